package registry

import (
	"context"
	"errors"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
)

// DefaultSensorCacheTTL is the staleness bound of SensorCache, the platform's
// one bound (cache.TTL): a sensor created, deleted, moved to another device
// or retyped in Core is seen by the ingest path and the pipeline of every
// process within this time (sooner in the process that made the change when
// it calls Forget).
const DefaultSensorCacheTTL = cache.TTL

// SensorGetter is the one registry read the data path repeats per reading.
type SensorGetter interface {
	GetSensor(ctx context.Context, id int64) (Sensor, error)
}

// SensorCache is the cache of sensor lookups in front of the registry
// (ingest validation and the pipeline both use it), on the platform's one
// read cache (internal/cache): hits and "not found" are kept for the TTL
// (DefaultSensorCacheTTL unless configured), other errors are not kept.
type SensorCache struct {
	src SensorGetter
	c   *cache.Cache[int64, Sensor]
}

// NewSensorCache caches src's lookups for ttl (≤ 0: DefaultSensorCacheTTL).
func NewSensorCache(src SensorGetter, ttl time.Duration) *SensorCache {
	return newSensorCache(src, ttl, nil)
}

func newSensorCache(src SensorGetter, ttl time.Duration, now func() time.Time) *SensorCache {
	return &SensorCache{src: src, c: cache.New[int64, Sensor](cache.Config{
		TTL: ttl, MaxEntries: 200_000, Now: now,
		KeepError: func(err error) bool { return errors.Is(err, ErrNotFound) },
	})}
}

// GetSensor returns the sensor (or an error wrapping ErrNotFound) as the
// registry answered it at most the TTL ago.
func (c *SensorCache) GetSensor(ctx context.Context, id int64) (Sensor, error) {
	s, err := c.c.Load(id, func() (Sensor, error) { return c.src.GetSensor(ctx, id) })
	if errors.Is(err, ErrNotFound) {
		return Sensor{}, ErrNotFound
	}
	return s, err
}

// Forget drops a sensor at once (its deletion in this process).
func (c *SensorCache) Forget(id int64) { c.c.Forget(id) }
