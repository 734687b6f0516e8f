package registrysql

import (
	"sync"
	"time"
)

// readCache keeps recently read rows of the embedded SQLite registry, so
// hot reads (token generations, device ownership, sensor lists) skip SQL.
// Every write in this process drops the rows it changed, and a read that raced with a write
// is not stored (see get). Entries also expire after ttl, which bounds how
// stale a row can be when another process writes the same file.
type readCache struct {
	mu  sync.RWMutex
	gen uint64 // bumped after every write
	m   map[cacheKey]cacheEntry
	max int
	ttl time.Duration
}

type cacheEntry struct {
	v     any
	until time.Time
}

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

func newReadCache(max int, ttl time.Duration) *readCache {
	return &readCache{m: map[cacheKey]cacheEntry{}, max: max, ttl: ttl}
}

// get returns the cached value of k or loads it. A loaded value is stored
// only if no write finished while it was loading, so a stale row can never
// outlive the write that changed it.
func get[T any](c *readCache, k cacheKey, load func() (T, error), clone func(T) T) (T, error) {
	if c == nil {
		return load()
	}
	now := time.Now()
	c.mu.RLock()
	e, ok := c.m[k]
	gen := c.gen
	c.mu.RUnlock()
	if ok && now.Before(e.until) {
		return clone(e.v.(T)), nil
	}
	out, err := load()
	if err != nil {
		return out, err
	}
	c.mu.Lock()
	if c.gen == gen {
		if len(c.m) >= c.max {
			clear(c.m)
		}
		c.m[k] = cacheEntry{v: clone(out), until: now.Add(c.ttl)}
	}
	c.mu.Unlock()
	return out, nil
}

// invalidate drops the given keys after a write changed their rows, or
// empties the cache when no key is given (writes whose effects spread, such
// as cascading deletes). Either way a read that was loading meanwhile is not
// stored (see get).
func (c *readCache) invalidate(keys ...cacheKey) {
	if c == nil {
		return
	}
	c.mu.Lock()
	c.gen++
	if len(keys) == 0 {
		clear(c.m)
	}
	for _, k := range keys {
		delete(c.m, k)
	}
	c.mu.Unlock()
}

func same[T any](v T) T { return v }
