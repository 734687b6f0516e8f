package registry

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultSensorCacheTTL is the staleness bound of SensorCache: a sensor
// created, deleted, moved to another device or retyped in Core is seen by
// the ingest path and the pipeline of every process within this time
// (sooner in the process that made the change when it calls Forget).
const DefaultSensorCacheTTL = 2 * time.Second

// SensorGetter is the one registry read the data path repeats per reading.
type SensorGetter interface {
	GetSensor(ctx context.Context, id int64) (Sensor, error)
}

// SensorCache is the one cache of sensor lookups in front of the registry
// (ingest validation and the pipeline both use it): hits and "not found"
// are kept for the TTL (DefaultSensorCacheTTL unless configured), other
// errors are not kept. It holds at most max entries; when full it starts
// over rather than grow.
type SensorCache struct {
	src SensorGetter
	ttl time.Duration
	max int
	now func() time.Time

	mu sync.RWMutex
	m  map[int64]sensorEntry
}

type sensorEntry struct {
	s       Sensor
	missing bool
	expires time.Time
}

// NewSensorCache caches src's lookups for ttl (≤ 0: DefaultSensorCacheTTL).
func NewSensorCache(src SensorGetter, ttl time.Duration) *SensorCache {
	if ttl <= 0 {
		ttl = DefaultSensorCacheTTL
	}
	return &SensorCache{src: src, ttl: ttl, max: 200_000, now: time.Now, m: map[int64]sensorEntry{}}
}

// GetSensor returns the sensor (or an error wrapping ErrNotFound) as the
// registry answered it at most the TTL ago.
func (c *SensorCache) GetSensor(ctx context.Context, id int64) (Sensor, error) {
	now := c.now()
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || now.After(e.expires) {
		s, err := c.src.GetSensor(ctx, id)
		switch {
		case errors.Is(err, ErrNotFound):
			e = sensorEntry{missing: true, expires: now.Add(c.ttl)}
		case err != nil:
			return Sensor{}, err
		default:
			e = sensorEntry{s: s, expires: now.Add(c.ttl)}
		}
		c.mu.Lock()
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[id] = e
		c.mu.Unlock()
	}
	if e.missing {
		return Sensor{}, ErrNotFound
	}
	return e.s, nil
}

// Forget drops a sensor at once (its deletion in this process).
func (c *SensorCache) Forget(id int64) {
	c.mu.Lock()
	delete(c.m, id)
	c.mu.Unlock()
}
