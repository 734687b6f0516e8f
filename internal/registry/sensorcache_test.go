package registry

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache/cachetest"
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

// batchSensors also reads many sensors at once (SensorsReader).
type batchSensors struct {
	mu             sync.Mutex
	s              map[int64]Sensor
	single, batchs int
}

func (b *batchSensors) GetSensor(_ context.Context, id int64) (Sensor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.single++
	s, ok := b.s[id]
	if !ok {
		return Sensor{}, ErrNotFound
	}
	return s, nil
}

func (b *batchSensors) GetSensors(_ context.Context, ids []int64) (map[int64]Sensor, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batchs++
	out := map[int64]Sensor{}
	for _, id := range ids {
		if s, ok := b.s[id]; ok {
			out[id] = s
		}
	}
	return out, nil
}

// TestSensorCache_BatchRefresh: over a registry with batch reads, sensors
// looked up again and again are refreshed together (no one-by-one reads after
// the first), and a sensor moved or deleted elsewhere is still seen within
// the TTL.
func TestSensorCache_BatchRefresh(t *testing.T) {
	const ttl = 200 * time.Millisecond
	src := &batchSensors{s: map[int64]Sensor{}}
	for id := int64(1); id <= 50; id++ {
		src.s[id] = Sensor{ID: id, DeviceID: 7, Type: TypeDouble}
	}
	c := NewSensorCache(src, ttl)
	ctx := context.Background()
	end := time.Now().Add(4 * ttl)
	for time.Now().Before(end) {
		for id := int64(1); id <= 50; id++ {
			if s, err := c.GetSensor(ctx, id); err != nil || s.DeviceID != 7 {
				t.Fatalf("sensor %d: %+v %v", id, s, err)
			}
		}
		time.Sleep(ttl / 20)
	}
	src.mu.Lock()
	single, batches := src.single, src.batchs
	src.s[1] = Sensor{ID: 1, DeviceID: 8, Type: TypeDouble}
	delete(src.s, 2)
	src.mu.Unlock()
	if single != 50 || batches == 0 {
		t.Fatalf("%d one-by-one reads and %d batches: want the first 50 reads, then batches only", single, batches)
	}
	cachetest.SeenWithin(t, ttl, "move or deletion not seen", func() bool {
		s, _ := c.GetSensor(ctx, 1)
		_, err := c.GetSensor(ctx, 2)
		return s.DeviceID == 8 && errors.Is(err, ErrNotFound)
	})
}

// countedSensors is a batchSensors with the registry's change counter.
type countedSensors struct {
	batchSensors
	changes atomic.Int64
}

func (c *countedSensors) Changes(context.Context) (int64, error) { return c.changes.Load(), nil }

// TestSensorCache_CountedRefresh: over a registry with a change counter,
// refresh rounds during which nothing was written read no sensor, and a
// sensor moved or deleted elsewhere (which moves the counter) is still seen
// within the TTL.
func TestSensorCache_CountedRefresh(t *testing.T) {
	const ttl = 200 * time.Millisecond
	src := &countedSensors{batchSensors: batchSensors{s: map[int64]Sensor{}}}
	for id := int64(1); id <= 50; id++ {
		src.s[id] = Sensor{ID: id, DeviceID: 7, Type: TypeDouble}
	}
	c := NewSensorCache(src, ttl)
	ctx := context.Background()
	use := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(ttl / 20) {
			for id := int64(1); id <= 50; id++ {
				if s, err := c.GetSensor(ctx, id); err != nil || s.DeviceID != 7 {
					t.Fatalf("sensor %d: %+v %v", id, s, err)
				}
			}
		}
	}
	use(2 * ttl)
	src.mu.Lock()
	batches := src.batchs
	src.mu.Unlock()
	use(3 * ttl)
	src.mu.Lock()
	quiet := src.batchs - batches
	src.s[1] = Sensor{ID: 1, DeviceID: 8, Type: TypeDouble}
	delete(src.s, 2)
	src.mu.Unlock()
	src.changes.Add(1)
	if batches == 0 || quiet != 0 {
		t.Fatalf("%d batches, then %d with nothing written: want some, then none", batches, quiet)
	}
	cachetest.SeenWithin(t, ttl, "move or deletion not seen", func() bool {
		s, _ := c.GetSensor(ctx, 1)
		_, err := c.GetSensor(ctx, 2)
		return s.DeviceID == 8 && errors.Is(err, ErrNotFound)
	})
}
