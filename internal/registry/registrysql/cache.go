package registrysql

import (
	"container/list"
	"sync"
	"time"
)

// DefaultCacheEntries is the read cache's default size in entries. An entry
// costs about 0.7 KB for a device with one label (less for users, sensors
// and grants; see TestReadCache_MemoryPerEntry), so the default holds at
// most ~70 MB.
const DefaultCacheEntries = 100_000

// readCache keeps recently read rows of the embedded SQLite registry, so
// hot reads (token generations, device ownership, sensor lists) skip SQL.
// It is a bounded LRU: when full, the least recently used entry goes, so the
// working set stays cached whatever the registry's size.
// Every write in this process drops the rows it changed, and a read that raced with a write
// is not stored (see get). Entries also expire after ttl, which bounds how
// stale a row can be when another process writes the same file.
type readCache struct {
	mu  sync.Mutex
	gen uint64 // bumped after every write
	m   map[cacheKey]*list.Element
	lru list.List // of *cacheEntry, most recently used first
	max int
	ttl time.Duration
}

type cacheEntry struct {
	k     cacheKey
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

// newReadCache returns a cache of at most max entries (nil, no caching, when
// max is 0) whose entries live ttl.
func newReadCache(max int, ttl time.Duration) *readCache {
	if max <= 0 {
		return nil
	}
	return &readCache{m: map[cacheKey]*list.Element{}, max: max, ttl: ttl}
}

// get returns the cached value of k or loads it. A loaded value is stored
// only if no write finished while it was loading, so a stale row can never
// outlive the write that changed it.
func get[T any](c *readCache, k cacheKey, load func() (T, error), clone func(T) T) (T, error) {
	if c == nil {
		return load()
	}
	now := time.Now()
	c.mu.Lock()
	el, ok := c.m[k]
	if ok {
		e := el.Value.(*cacheEntry)
		if now.Before(e.until) {
			c.lru.MoveToFront(el)
			v := e.v.(T)
			c.mu.Unlock()
			return clone(v), nil
		}
	}
	gen := c.gen
	c.mu.Unlock()
	out, err := load()
	if err != nil {
		return out, err
	}
	v := clone(out)
	c.mu.Lock()
	if c.gen == gen {
		c.put(k, v, now.Add(c.ttl))
	}
	c.mu.Unlock()
	return out, nil
}

// put stores k (c.mu held), evicting the least recently used entry when full.
func (c *readCache) put(k cacheKey, v any, until time.Time) {
	if el, ok := c.m[k]; ok {
		e := el.Value.(*cacheEntry)
		e.v, e.until = v, until
		c.lru.MoveToFront(el)
		return
	}
	for c.lru.Len() >= c.max {
		old := c.lru.Back()
		delete(c.m, old.Value.(*cacheEntry).k)
		c.lru.Remove(old)
	}
	c.m[k] = c.lru.PushFront(&cacheEntry{k: k, v: v, until: until})
}

// len returns the number of entries.
func (c *readCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
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
		c.lru.Init()
	}
	for _, k := range keys {
		if el, ok := c.m[k]; ok {
			delete(c.m, k)
			c.lru.Remove(el)
		}
	}
	c.mu.Unlock()
}

func same[T any](v T) T { return v }
