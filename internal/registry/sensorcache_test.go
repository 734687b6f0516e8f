package registry

import (
	"context"
	"errors"
	"testing"
	"time"
)

type countingSensors struct {
	calls int
	s     map[int64]Sensor
	err   error
}

func (c *countingSensors) GetSensor(_ context.Context, id int64) (Sensor, error) {
	c.calls++
	if c.err != nil {
		return Sensor{}, c.err
	}
	s, ok := c.s[id]
	if !ok {
		return Sensor{}, ErrNotFound
	}
	return s, nil
}

// TestSensorCache_StalenessBound: hits and "not found" are reused until the
// TTL, then re-read; other errors are never kept; Forget re-reads at once.
func TestSensorCache_StalenessBound(t *testing.T) {
	src := &countingSensors{s: map[int64]Sensor{1: {ID: 1, DeviceID: 7, Type: TypeDouble}}}
	now := time.Unix(1000, 0)
	c := newSensorCache(src, time.Second, func() time.Time { return now })
	ctx := context.Background()
	for range 3 {
		if s, err := c.GetSensor(ctx, 1); err != nil || s.DeviceID != 7 {
			t.Fatalf("hit: %+v %v", s, err)
		}
		if _, err := c.GetSensor(ctx, 2); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing: %v", err)
		}
	}
	if src.calls != 2 {
		t.Fatalf("%d registry reads within the TTL, want 2", src.calls)
	}
	src.s[1] = Sensor{ID: 1, DeviceID: 8, Type: TypeDouble} // moved in another process
	now = now.Add(time.Second + time.Nanosecond)
	if s, _ := c.GetSensor(ctx, 1); s.DeviceID != 8 {
		t.Fatalf("after the TTL: device %d, want 8", s.DeviceID)
	}
	delete(src.s, 1)
	c.Forget(1)
	if _, err := c.GetSensor(ctx, 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after Forget: %v, want not found at once", err)
	}
	src.err = errors.New("registry down")
	calls := src.calls
	now = now.Add(2 * time.Second)
	for range 2 {
		if _, err := c.GetSensor(ctx, 1); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("registry error: %v", err)
		}
	}
	if src.calls != calls+2 {
		t.Fatalf("a registry error was cached")
	}
	if NewSensorCache(src, 0).c.TTL() != DefaultSensorCacheTTL {
		t.Fatal("ttl 0 must select the default bound")
	}
}
