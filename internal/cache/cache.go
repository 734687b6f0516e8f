// Package cache is the one read cache of the platform: a bounded LRU whose
// entries expire after a TTL, used in front of every repeated registry read
// (the SQLite registry's rows, token and certificate verification, query
// authorisation, sensor lookups on the data path).
//
// TTL is the one staleness bound: an answer is reused at most TTL after the
// registry gave it, so a key rotation, token revocation, removed device
// certificate, revoked grant, deleted or moved sensor is noticed within TTL
// (docs/ARCHITECTURE.md, "Caches and staleness"). Writers in the same process
// call Forget and are seen at once.
package cache

import (
	"container/list"
	"sync"
	"time"
)

// TTL is the platform's staleness bound for cached registry answers
// (DefaultMaxEntries entries at most per cache unless configured).
const TTL = 2 * time.Second

// DefaultMaxEntries bounds a cache when Config.MaxEntries is 0.
const DefaultMaxEntries = 100_000

// Config tunes a cache; the zero value is TTL and DefaultMaxEntries.
type Config struct {
	// TTL is how long an answer is reused (≤ 0: TTL).
	TTL time.Duration
	// MaxEntries bounds the entries; the least recently used goes first
	// (0: DefaultMaxEntries).
	MaxEntries int
	// KeepError says which load errors are answers to cache (such as "not
	// found"); other errors are never cached. Nil: no error is cached.
	KeepError func(error) bool
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// Cache is a TTL + LRU cache of loaded values. A nil *Cache caches nothing.
type Cache[K comparable, V any] struct {
	ttl  time.Duration
	max  int
	keep func(error) bool
	now  func() time.Time

	refresh Refresher[K, V]
	// refreshing: the refresh goroutine runs (refresh.go).
	refreshing bool

	mu  sync.Mutex
	gen uint64 // bumped by every Forget
	m   map[K]*list.Element
	lru list.List // of *entry[K, V], most recently used first
}

type entry[K comparable, V any] struct {
	k     K
	v     V
	err   error
	until time.Time
	// used: read since it was (re)loaded, so worth refreshing.
	used bool
	// counted: v was read by a refresh round past any other cache after
	// that round read the source's change counter, whose value was ver
	// (refresh.go); a round that reads the same value extends the entry
	// without reading it again. Any other store (Load, Put) clears it.
	counted bool
	ver     int64
}

// New returns a cache configured by cfg.
func New[K comparable, V any](cfg Config) *Cache[K, V] {
	if cfg.TTL <= 0 {
		cfg.TTL = TTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Cache[K, V]{ttl: cfg.TTL, max: cfg.MaxEntries, keep: cfg.KeepError, now: cfg.Now,
		m: map[K]*list.Element{}}
}

// TTL returns the cache's staleness bound.
func (c *Cache[K, V]) TTL() time.Duration { return c.ttl }

// Get returns the cached answer for k if it is younger than the TTL.
func (c *Cache[K, V]) Get(k K) (v V, ok bool, err error) {
	if c == nil {
		return v, false, nil
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[k]
	if !ok {
		return v, false, nil
	}
	e := el.Value.(*entry[K, V])
	if !now.Before(e.until) {
		return v, false, nil
	}
	c.lru.MoveToFront(el)
	if c.refresh.Batch != nil && e.err == nil {
		e.used = true
		c.startRefresh()
	}
	return e.v, true, e.err
}

// Load returns the cached answer for k, or calls load and caches its answer
// (a value, or an error KeepError accepts). An answer loaded while a Forget
// ran is returned but not cached, so a stale answer never outlives the write
// that changed it.
func (c *Cache[K, V]) Load(k K, load func() (V, error)) (V, error) {
	if c == nil {
		return load()
	}
	if v, ok, err := c.Get(k); ok {
		return v, err
	}
	c.mu.Lock()
	gen := c.gen
	c.mu.Unlock()
	now := c.now()
	v, err := load()
	if err != nil && (c.keep == nil || !c.keep(err)) {
		return v, err
	}
	c.mu.Lock()
	if c.gen == gen {
		c.put(k, v, err, now.Add(c.ttl))
	}
	c.mu.Unlock()
	return v, err
}

// Put caches v for k for the TTL.
func (c *Cache[K, V]) Put(k K, v V) {
	if c == nil {
		return
	}
	until := c.now().Add(c.ttl)
	c.mu.Lock()
	c.put(k, v, nil, until)
	c.mu.Unlock()
}

// put stores k (c.mu held), evicting the least recently used entries when
// full, and expired ones from the least recently used end: an expired entry
// is never returned again, and under a stream of distinct keys (random reads
// over a large registry) it would otherwise stay until MaxEntries pushed it
// out, holding memory — and garbage-collector work — for nothing.
func (c *Cache[K, V]) put(k K, v V, err error, until time.Time) {
	if el, ok := c.m[k]; ok {
		e := el.Value.(*entry[K, V])
		e.v, e.err, e.until, e.used, e.counted = v, err, until, false, false
		c.lru.MoveToFront(el)
		return
	}
	now := until.Add(-c.ttl)
	for old := c.lru.Back(); old != nil; old = c.lru.Back() {
		e := old.Value.(*entry[K, V])
		if c.lru.Len() < c.max && now.Before(e.until) {
			break
		}
		delete(c.m, e.k)
		c.lru.Remove(old)
	}
	c.m[k] = c.lru.PushFront(&entry[K, V]{k: k, v: v, err: err, until: until})
}

// Forget drops the given keys at once (a write in this process changed
// them), or every entry when no key is given. Loads running meanwhile are
// not cached.
func (c *Cache[K, V]) Forget(keys ...K) {
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

// Len returns the number of entries (expired ones included until evicted).
func (c *Cache[K, V]) Len() int {
	if c == nil {
		return 0
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
