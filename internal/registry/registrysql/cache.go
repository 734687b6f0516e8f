package registrysql

import (
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
)

// DefaultCacheEntries is the read cache's default size in entries. An entry
// costs about 0.7 KB for a device with one label (less for users, sensors
// and grants; see TestReadCache_MemoryPerEntry), so the default holds at
// most ~70 MB.
const DefaultCacheEntries = 100_000

// readCache keeps recently read rows of the embedded SQLite registry, so
// hot reads (token generations, device ownership, sensor lists) skip SQL.
// It is the platform's one read cache (internal/cache: a bounded LRU whose
// entries live cache.TTL). Every write in this process drops the rows it
// changed, and a read that raced with a write is not stored; the TTL bounds
// how stale a row can be when another process writes the same file.
type readCache = cache.Cache[cacheKey, any]

type cacheKey struct {
	kind byte
	id   int64
	id2  int64
}

const (
	keyUser byte = iota
	keyDevice
	keySensor
	keySensors
	keyConsumer
	keyGrant
)

// newReadCache returns a cache of at most max entries (nil, no caching, when
// max is 0) whose entries live ttl.
func newReadCache(max int, ttl time.Duration) *readCache {
	if max <= 0 {
		return nil
	}
	return cache.New[cacheKey, any](cache.Config{MaxEntries: max, TTL: ttl})
}

// get returns the cached value of k or loads it; clone keeps callers from
// sharing (and mutating) the cached value.
func get[T any](c *readCache, k cacheKey, load func() (T, error), clone func(T) T) (T, error) {
	if c == nil {
		return load()
	}
	v, err := c.Load(k, func() (any, error) {
		out, err := load()
		if err != nil {
			return nil, err
		}
		return clone(out), nil
	})
	if err != nil {
		var zero T
		return zero, err
	}
	return clone(v.(T)), nil
}

func same[T any](v T) T { return v }
