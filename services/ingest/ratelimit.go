package ingest

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// DeviceGetter is what the rate limiter needs from the registry: the
// device's ingest limit override. A SensorGetter that also implements it
// enables per-device overrides.
type DeviceGetter interface {
	GetDevice(ctx context.Context, id int64) (registry.Device, error)
}

// CodeRateLimited is the item error code of a batch refused by the
// device's ingest rate limit.
const CodeRateLimited = "rate_limited"

// rateLimiter is one token bucket per device, shared by every edge of this
// process: a bucket holds up to burst readings and refills at rate per
// second. A batch of n readings is accepted when the bucket holds at least
// min(n, burst) and then takes all n (the bucket may go into debt), so a
// batch larger than the burst is never refused forever.
type rateLimiter struct {
	rate    float64 // default readings/s; ≤ 0: unlimited
	burst   float64 // default burst
	devices DeviceGetter
	ttl     time.Duration
	// access, when the registry reads many devices at once, caches the
	// overrides and refreshes those in use together ahead of expiry
	// (cache.NewRefreshing): the buckets then ask it at every take instead
	// of one registry read per device per ttl.
	access *cache.Cache[int64, registry.DeviceAccess]

	mu sync.Mutex
	m  map[int64]*bucket
}

type bucket struct {
	tokens  float64
	last    time.Time
	rate    float64
	burst   float64
	checked time.Time // when the device's override was last read
}

func newRateLimiter(rate float64, burst int64, devices DeviceGetter, ttl time.Duration) *rateLimiter {
	b := float64(burst)
	if b <= 0 {
		b = max(rate, 1)
	}
	l := &rateLimiter{rate: rate, burst: b, devices: devices, ttl: ttl, m: map[int64]*bucket{}}
	if br, ok := devices.(registry.DeviceAccessReader); ok {
		timeout := max(ttl/4, 10*time.Millisecond)
		r := cache.Refresher[int64, registry.DeviceAccess]{Batch: func(old map[int64]registry.DeviceAccess) map[int64]registry.DeviceAccess {
			ids := make([]int64, 0, len(old))
			for id := range old {
				ids = append(ids, id)
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			fresh, err := br.DeviceAccess(ctx, ids)
			if err != nil {
				return nil // the entries expire; the next takes read them one by one
			}
			return fresh
		}}
		// Not read at all while the registry's change counter says no
		// device was written since (cache.Refresher.Changes).
		if cc, ok := devices.(registry.ChangeCounter); ok {
			r.Changes = registry.ChangesWithin(cc, timeout)
		}
		l.access = cache.NewRefreshingWith(cache.Config{TTL: ttl, MaxEntries: 1_000_000}, r)
	}
	return l
}

// limits returns the device's rate and burst: its override, else the
// defaults.
func (l *rateLimiter) limits(ctx context.Context, device int64) (rate, burst float64) {
	rate, burst = l.rate, l.burst
	if l.devices == nil {
		return rate, burst
	}
	var d registry.DeviceAccess
	var err error
	if l.access != nil {
		d, err = l.access.Load(device, func() (registry.DeviceAccess, error) {
			d, err := l.devices.GetDevice(ctx, device)
			return registry.DeviceAccess{KeyGen: d.KeyGen, IngestRate: d.IngestRate, IngestBurst: d.IngestBurst}, err
		})
	} else {
		var dev registry.Device
		dev, err = l.devices.GetDevice(ctx, device)
		d = registry.DeviceAccess{KeyGen: dev.KeyGen, IngestRate: dev.IngestRate, IngestBurst: dev.IngestBurst}
	}
	if err != nil { // the sensor lookups report registry trouble
		return rate, burst
	}
	if d.IngestRate > 0 {
		rate = d.IngestRate
		burst = max(rate, 1)
	}
	if d.IngestBurst > 0 {
		burst = float64(d.IngestBurst)
	}
	return rate, burst
}

// take accounts n readings of device at now; it returns how long to wait
// before retrying when the batch is refused (0: accepted).
func (l *rateLimiter) take(ctx context.Context, device int64, n int, now time.Time) time.Duration {
	l.mu.Lock()
	b, ok := l.m[device]
	stale := !ok || now.Sub(b.checked) > l.ttl || l.access != nil
	l.mu.Unlock()
	var rate, burst float64
	if stale {
		rate, burst = l.limits(ctx, device)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok = l.m[device]; !ok {
		if len(l.m) >= 1_000_000 {
			l.evict(now)
		}
		b = &bucket{tokens: burst, last: now}
		l.m[device] = b
	}
	if stale {
		if b.rate != rate || b.burst != burst {
			b.tokens = min(b.tokens, burst)
			if !ok {
				b.tokens = burst
			}
		}
		b.rate, b.burst, b.checked = rate, burst, now
	}
	if b.rate <= 0 {
		return 0
	}
	b.tokens = min(b.burst, b.tokens+b.rate*now.Sub(b.last).Seconds())
	b.last = now
	need := min(float64(n), b.burst)
	if b.tokens < need {
		wait := time.Duration(math.Ceil((need-b.tokens)/b.rate*1000)) * time.Millisecond
		return max(wait, time.Millisecond)
	}
	b.tokens -= float64(n)
	return 0
}

// evict forgets buckets that are full again (their device has been quiet).
func (l *rateLimiter) evict(now time.Time) {
	for id, b := range l.m {
		if b.rate <= 0 || b.tokens+b.rate*now.Sub(b.last).Seconds() >= b.burst {
			delete(l.m, id)
		}
	}
}

func rateLimited(n int, wait time.Duration) *BatchError {
	return &BatchError{Class: ClassRateLimited, RetryAfter: wait, Items: []ItemError{{Index: -1, Code: CodeRateLimited,
		Message: fmt.Sprintf("the device's ingest rate limit is exceeded: %d readings refused, retry in %v", n, wait.Round(time.Millisecond))}}}
}
