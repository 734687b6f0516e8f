package ingest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache/cachetest"
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

// batchDevices also reads many devices' access fields at once.
type batchDevices struct {
	mu             sync.Mutex
	d              map[int64]registry.Device
	single, batchs int
}

func (b *batchDevices) GetDevice(_ context.Context, id int64) (registry.Device, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.single++
	d, ok := b.d[id]
	if !ok {
		return d, registry.ErrNotFound
	}
	return d, nil
}

func (b *batchDevices) DeviceAccess(_ context.Context, ids []int64) (map[int64]registry.DeviceAccess, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batchs++
	out := map[int64]registry.DeviceAccess{}
	for _, id := range ids {
		if d, ok := b.d[id]; ok {
			out[id] = registry.DeviceAccess{KeyGen: d.KeyGen, IngestRate: d.IngestRate, IngestBurst: d.IngestBurst}
		}
	}
	return out, nil
}

// TestRateLimiter_BatchRefreshedOverrides: over a registry with batch reads,
// the overrides of devices sending again and again are re-read together (no
// one-by-one read after a device's first), and a changed override is still
// applied within the TTL.
func TestRateLimiter_BatchRefreshedOverrides(t *testing.T) {
	const ttl = 200 * time.Millisecond
	devs := &batchDevices{d: map[int64]registry.Device{1: {ID: 1}, 2: {ID: 2}}}
	l := newRateLimiter(0, 0, devs, ttl)
	ctx := context.Background()
	end := time.Now().Add(4 * ttl)
	for time.Now().Before(end) {
		for id := int64(1); id <= 2; id++ {
			if w := l.take(ctx, id, 1000, time.Now()); w != 0 {
				t.Fatalf("device %d refused without a limit: %v", id, w)
			}
		}
		time.Sleep(ttl / 20)
	}
	devs.mu.Lock()
	single, batches := devs.single, devs.batchs
	devs.d[1] = registry.Device{ID: 1, IngestRate: 1, IngestBurst: 1}
	devs.mu.Unlock()
	if single != 2 || batches == 0 {
		t.Fatalf("%d one-by-one reads and %d batches: want 2, then batches only", single, batches)
	}
	cachetest.SeenWithin(t, ttl, "the new override not applied", func() bool { return l.take(ctx, 1, 5, time.Now()) != 0 })
	if w := l.take(ctx, 2, 1000, time.Now()); w != 0 {
		t.Fatalf("the other device: %v", w)
	}
}

// countedDevices is a batchDevices with the registry's change counter.
type countedDevices struct {
	batchDevices
	changes atomic.Int64
}

func (c *countedDevices) Changes(context.Context) (int64, error) { return c.changes.Load(), nil }

// TestRateLimiter_CountedRefreshedOverrides: over a registry with a change
// counter, refresh rounds during which nothing was written read no device,
// and a new override (which moves the counter) is applied within the TTL.
func TestRateLimiter_CountedRefreshedOverrides(t *testing.T) {
	const ttl = 200 * time.Millisecond
	devs := &countedDevices{batchDevices: batchDevices{d: map[int64]registry.Device{1: {ID: 1}, 2: {ID: 2}}}}
	l := newRateLimiter(0, 0, devs, ttl)
	ctx := context.Background()
	use := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(ttl / 20) {
			for id := int64(1); id <= 2; id++ {
				if w := l.take(ctx, id, 1000, time.Now()); w != 0 {
					t.Fatalf("device %d refused without a limit: %v", id, w)
				}
			}
		}
	}
	use(2 * ttl)
	devs.mu.Lock()
	batches := devs.batchs
	devs.mu.Unlock()
	use(3 * ttl)
	devs.mu.Lock()
	quiet := devs.batchs - batches
	devs.d[1] = registry.Device{ID: 1, IngestRate: 1, IngestBurst: 1}
	devs.mu.Unlock()
	devs.changes.Add(1)
	if batches == 0 || quiet != 0 {
		t.Fatalf("%d batches, then %d with nothing written: want some, then none", batches, quiet)
	}
	cachetest.SeenWithin(t, ttl, "the new override not applied", func() bool { return l.take(ctx, 1, 5, time.Now()) != 0 })
	if w := l.take(ctx, 2, 1000, time.Now()); w != 0 {
		t.Fatalf("the other device: %v", w)
	}
}
