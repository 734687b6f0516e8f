package ingest

import (
	"context"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

type devicesFake map[int64]registry.Device

func (f devicesFake) GetDevice(_ context.Context, id int64) (registry.Device, error) {
	d, ok := f[id]
	if !ok {
		return d, registry.ErrNotFound
	}
	return d, nil
}

func TestRateLimiter_TokenBucketPerDeviceWithOverrides(t *testing.T) {
	devs := devicesFake{1: {ID: 1}, 2: {ID: 2, IngestRate: 1, IngestBurst: 2}, 3: {ID: 3}}
	l := newRateLimiter(10, 20, devs, time.Hour)
	ctx, now := context.Background(), time.Unix(1000, 0)
	// Default: a burst of 20, then refused, with the wait to fit.
	if w := l.take(ctx, 1, 20, now); w != 0 {
		t.Fatalf("burst refused: %v", w)
	}
	if w := l.take(ctx, 1, 5, now); w != 500*time.Millisecond {
		t.Fatalf("over the burst: wait %v, want 500ms (5 readings at 10/s)", w)
	}
	if w := l.take(ctx, 1, 5, now.Add(500*time.Millisecond)); w != 0 {
		t.Fatalf("after the refill: %v", w)
	}
	// A batch larger than the burst passes when the bucket is full, then
	// the device is in debt.
	if w := l.take(ctx, 3, 50, now); w != 0 {
		t.Fatalf("batch larger than the burst with a full bucket: %v", w)
	}
	if w := l.take(ctx, 3, 1, now.Add(time.Second)); w == 0 {
		t.Fatal("a device in debt was not refused")
	}
	// Per-device override: 1/s, burst 2.
	if l.take(ctx, 2, 2, now) != 0 || l.take(ctx, 2, 1, now) != time.Second {
		t.Fatal("the device override (1/s, burst 2) was not applied")
	}
	// Unlimited by default, limited by override.
	u := newRateLimiter(0, 0, devs, time.Hour)
	for i := 0; i < 1000; i++ {
		if u.take(ctx, 1, 10_000, now) != 0 {
			t.Fatal("an unlimited device was refused")
		}
	}
	if u.take(ctx, 2, 3, now) != 0 || u.take(ctx, 2, 1, now) == 0 {
		t.Fatal("override not applied with an unlimited default")
	}
}

func TestRateLimiter_OverrideChangesAreSeenAfterTheTTL(t *testing.T) {
	devs := devicesFake{1: {ID: 1, IngestRate: 1, IngestBurst: 1}}
	l := newRateLimiter(0, 0, devs, time.Second)
	ctx, now := context.Background(), time.Unix(1000, 0)
	if l.take(ctx, 1, 1, now) != 0 || l.take(ctx, 1, 1, now) == 0 {
		t.Fatal("limit 1/s not applied")
	}
	devs[1] = registry.Device{ID: 1} // back to the (unlimited) default
	if l.take(ctx, 1, 1, now.Add(500*time.Millisecond)) == 0 {
		t.Fatal("the change was seen before the TTL")
	}
	if l.take(ctx, 1, 100, now.Add(2*time.Second)) != 0 {
		t.Fatal("the removed override still applies after the TTL")
	}
}
