package cache

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var errGone = errors.New("gone")

// TestCache_TTLIsTheStalenessBound: an answer is reused until the TTL and
// re-loaded after it; kept errors are answers, other errors are never kept;
// Forget re-loads at once; the zero config selects the one bound TTL.
func TestCache_TTLIsTheStalenessBound(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New[int, int](Config{TTL: time.Second, Now: func() time.Time { return now },
		KeepError: func(err error) bool { return errors.Is(err, errGone) }})
	row, loads := 1, 0
	var fail error
	load := func() (int, error) { loads++; return row, fail }
	for range 3 {
		if v, _ := c.Load(1, load); v != 1 {
			t.Fatalf("got %d", v)
		}
	}
	row = 2 // changed elsewhere, no Forget
	now = now.Add(time.Second - time.Nanosecond)
	if v, _ := c.Load(1, load); v != 1 || loads != 1 {
		t.Fatalf("within the TTL: %d after %d loads, want the cached 1 after 1", v, loads)
	}
	now = now.Add(time.Nanosecond)
	if v, _ := c.Load(1, load); v != 2 {
		t.Fatalf("at the TTL: %d, want the new 2", v)
	}
	row = 3
	c.Forget(1)
	if v, _ := c.Load(1, load); v != 3 {
		t.Fatalf("after Forget: %d, want 3 at once", v)
	}
	c.Forget()
	fail = errGone
	for range 2 {
		if _, err := c.Load(1, load); !errors.Is(err, errGone) {
			t.Fatalf("kept error: %v", err)
		}
	}
	if loads != 4 {
		t.Fatalf("%d loads, the kept error was not cached", loads)
	}
	fail = errors.New("registry down")
	now = now.Add(2 * time.Second)
	c.Load(1, load)
	c.Load(1, load)
	if loads != 6 {
		t.Fatalf("%d loads, a transient error was cached", loads)
	}
	if New[int, int](Config{}).TTL() != TTL {
		t.Fatal("the zero config must select TTL")
	}
}

// TestCache_LRUBound: the cache never exceeds MaxEntries and evicts the
// least recently used entry, keeping a hot working set.
func TestCache_LRUBound(t *testing.T) {
	c := New[int, int](Config{MaxEntries: 10, TTL: time.Minute})
	loads := map[int]int{}
	read := func(k int) { c.Load(k, func() (int, error) { loads[k]++; return k, nil }) }
	for k := 100; k < 10_000; k++ {
		read(k % 3)
		read(k)
		if c.Len() > 10 {
			t.Fatalf("%d entries, bound 10", c.Len())
		}
	}
	for k := range 3 {
		if loads[k] != 1 {
			t.Fatalf("hot key %d loaded %d times", k, loads[k])
		}
	}
	read(100)
	if loads[100] != 2 {
		t.Fatal("the least recently used entry was not evicted")
	}
}

// TestCache_ExpiredEntriesDoNotStay: a stream of distinct keys keeps only
// the entries still within the TTL, not MaxEntries expired ones; a hot key
// read again and again stays.
func TestCache_ExpiredEntriesDoNotStay(t *testing.T) {
	now := time.Unix(1000, 0)
	c := New[int, int](Config{MaxEntries: 100_000, TTL: time.Second, Now: func() time.Time { return now }})
	loads := 0
	for k := range 50_000 {
		now = now.Add(time.Millisecond) // 1,000 new keys per TTL
		c.Load(k, func() (int, error) { return k, nil })
		c.Load(-1, func() (int, error) { loads++; return -1, nil })
	}
	if n := c.Len(); n > 1_002 {
		t.Fatalf("%d entries after 50,000 distinct keys at 1,000 per TTL, want at most ~1,001 (the unexpired ones)", n)
	}
	if loads != 50 {
		t.Fatalf("the hot key was loaded %d times in 50 TTLs, want 50 (once per TTL)", loads)
	}
	if v, ok, _ := c.Get(49_999); !ok || v != 49_999 {
		t.Fatal("the newest entry is gone")
	}
}

// TestCache_RacingForgetIsNeverCached: a value loaded while a Forget ran is
// not stored, whatever the interleaving.
func TestCache_RacingForgetIsNeverCached(t *testing.T) {
	c := New[int, int64](Config{TTL: time.Minute})
	var row atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for range 2000 {
				row.Add(1)
				c.Forget()
			}
		}()
		go func() {
			defer wg.Done()
			for range 2000 {
				c.Load(1, func() (int64, error) { return row.Load(), nil })
			}
		}()
	}
	wg.Wait()
	if v, _ := c.Load(1, func() (int64, error) { return row.Load(), nil }); v != row.Load() {
		t.Fatalf("cached %d after all writes, row is %d", v, row.Load())
	}
}

// TestCache_NilCachesNothing: a nil cache (caching off) loads every time.
func TestCache_NilCachesNothing(t *testing.T) {
	var c *Cache[int, int]
	n := 0
	for range 3 {
		c.Load(1, func() (int, error) { n++; return n, nil })
	}
	c.Put(1, 1)
	c.Forget()
	if n != 3 || c.Len() != 0 {
		t.Fatalf("loads %d len %d", n, c.Len())
	}
}
