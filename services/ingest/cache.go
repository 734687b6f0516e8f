package ingest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// sensorCache remembers sensor lookups (including "not found") for a short
// TTL, so a stream of readings does not query the registry per reading.
// Deleted or re-assigned sensors are noticed within the TTL.
type sensorCache struct {
	src SensorGetter
	ttl time.Duration
	max int

	mu sync.RWMutex
	m  map[int64]sensorEntry
}

type sensorEntry struct {
	s       registry.Sensor
	missing bool
	expires time.Time
}

func newSensorCache(src SensorGetter, ttl time.Duration) *sensorCache {
	return &sensorCache{src: src, ttl: ttl, max: 200_000, m: map[int64]sensorEntry{}}
}

func (c *sensorCache) get(ctx context.Context, id int64, now time.Time) (registry.Sensor, error) {
	c.mu.RLock()
	e, ok := c.m[id]
	c.mu.RUnlock()
	if !ok || now.After(e.expires) {
		s, err := c.src.GetSensor(ctx, id)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			e = sensorEntry{missing: true, expires: now.Add(c.ttl)}
		case err != nil:
			return registry.Sensor{}, err
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
		return registry.Sensor{}, registry.ErrNotFound
	}
	return e.s, nil
}
