package registrysql

import (
	"sync/atomic"
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
//
// A row is admitted on its second read within a short while, not its first
// (a doorkeeper remembers the keys recently read once): under uniformly
// random reads over a large registry almost every row is read once per TTL,
// and caching those only filled the heap (and the garbage collector's
// marking) with entries that expired unread. A working set is read again
// and is cached from its second read on. A nil *readCache caches nothing.
type readCache struct {
	c    *cache.Cache[cacheKey, any]
	door doorkeeper
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
	return &readCache{c: cache.New[cacheKey, any](cache.Config{MaxEntries: max, TTL: ttl})}
}

// Forget drops the given keys (every entry when none is given): a write in
// this process changed them.
func (c *readCache) Forget(keys ...cacheKey) {
	if c != nil {
		c.c.Forget(keys...)
	}
}

// Len returns the number of cached entries.
func (c *readCache) Len() int {
	if c == nil {
		return 0
	}
	return c.c.Len()
}

// get returns the cached value of k or loads it; clone keeps callers from
// sharing (and mutating) the cached value. A value is cached from the
// second miss of its key on (doorkeeper).
func get[T any](c *readCache, k cacheKey, load func() (T, error), clone func(T) T) (T, error) {
	if c == nil {
		return load()
	}
	if v, ok, _ := c.c.Get(k); ok { // load errors are never cached
		return clone(v.(T)), nil
	}
	if !c.door.seen(k) {
		return load()
	}
	v, err := c.c.Load(k, func() (any, error) {
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

// doorSlots is the doorkeeper's size: 64K keys (512 KB without pointers, so
// nothing for the garbage collector to mark), far more than a working set
// re-read within the TTL, yet small enough that keys read once are
// overwritten soon.
const doorSlots = 1 << 16

// doorkeeper remembers a hash of each key recently missed, one per slot; a
// key whose slot holds its hash was missed before. Two keys sharing a slot
// overwrite each other (the later one is then admitted one miss later);
// a false "seen" needs two keys with the same 64-bit hash.
type doorkeeper struct {
	slots [doorSlots]atomic.Uint64
}

// seen records k and reports whether it was already recorded.
func (d *doorkeeper) seen(k cacheKey) bool {
	h := keyHash(k)
	s := &d.slots[h&(doorSlots-1)]
	if s.Load() == h {
		return true
	}
	s.Store(h)
	return false
}

// keyHash mixes a key into 64 bits (splitmix64's finaliser), never 0 (an
// empty slot).
func keyHash(k cacheKey) uint64 {
	x := uint64(k.id) ^ uint64(k.id2)*0x9e3779b97f4a7c15 ^ uint64(k.kind)<<56
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x | 1
}
