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
	cfg := cache.Config{
		TTL: ttl, MaxEntries: 200_000, Now: now,
		KeepError: func(err error) bool { return errors.Is(err, ErrNotFound) },
	}
	batch, ok := src.(SensorsReader)
	if !ok {
		return &SensorCache{src: src, c: cache.New[int64, Sensor](cfg)}
	}
	// The sensors readings keep naming are re-read together, one query per
	// refresh round instead of one per sensor per TTL (cache.NewRefreshing),
	// and not at all when the registry's change counter says no sensor was
	// written since they were read (cache.Refresher.Changes).
	r := cache.Refresher[int64, Sensor]{Batch: func(old map[int64]Sensor) map[int64]Sensor {
		ids := make([]int64, 0, len(old))
		for id := range old {
			ids = append(ids, id)
		}
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout(cfg.TTL))
		defer cancel()
		fresh, err := batch.GetSensors(ctx, ids)
		if err != nil {
			return nil // the entries expire; the next lookups load them one by one
		}
		return fresh
	}}
	if cc, ok := src.(ChangeCounter); ok {
		r.Changes = ChangesWithin(cc, refreshTimeout(cfg.TTL))
	}
	return &SensorCache{src: src, c: cache.NewRefreshingWith(cfg, r)}
}

// ChangesWithin returns cc's counter read as a cache.Refresher's Changes,
// each read bounded by timeout.
func ChangesWithin(cc ChangeCounter, timeout time.Duration) func() (int64, error) {
	return func() (int64, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return cc.Changes(ctx)
	}
}

// refreshTimeout bounds one batch refresh: a refresh answered later than a
// quarter TTL is of no use (the entries expire meanwhile).
func refreshTimeout(ttl time.Duration) time.Duration { return max(ttl/4, 10*time.Millisecond) }

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
