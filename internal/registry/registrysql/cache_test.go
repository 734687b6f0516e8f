package registrysql

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestReadCache_RacingWriteIsNeverCached: a value loaded before a write
// finished must not be stored, whatever the interleaving.
func TestReadCache_RacingWriteIsNeverCached(t *testing.T) {
	c := newReadCache(10, time.Minute)
	var db atomic.Int64 // the "row"
	k := cacheKey{keyDevice, 1, 0}
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				db.Add(1)
				c.Forget()
			}
		}()
	}
	for rd := 0; rd < 4; rd++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				_, _ = get(c, k, func() (int64, error) { return db.Load(), nil }, same)
			}
		}()
	}
	wg.Wait()
	got, _ := get(c, k, func() (int64, error) { return db.Load(), nil }, same)
	if got != db.Load() {
		t.Fatalf("cache returned %d after all writes, row is %d", got, db.Load())
	}
}

func TestReadCache_ErrorsAreNotCached(t *testing.T) {
	c := newReadCache(10, time.Minute)
	k := cacheKey{keyUser, 1, 0}
	if _, err := get(c, k, func() (int, error) { return 0, errors.New("boom") }, same); err == nil {
		t.Fatal("error lost")
	}
	if v, _ := get(c, k, func() (int, error) { return 5, nil }, same); v != 5 {
		t.Fatalf("got %d", v)
	}
}

// TestReadCache_EntriesExpire bounds staleness when another process writes.
func TestReadCache_EntriesExpire(t *testing.T) {
	c := newReadCache(10, 50*time.Millisecond)
	k := cacheKey{keyDevice, 1, 0}
	row := 1
	load := func() (int, error) { return row, nil }
	get(c, k, load, same) // the first read is not cached (doorkeeper)
	get(c, k, load, same)
	row = 2 // written by someone else: no invalidate here
	if v, _ := get(c, k, load, same); v != 1 {
		t.Fatalf("cached read = %d", v)
	}
	time.Sleep(60 * time.Millisecond)
	if v, _ := get(c, k, load, same); v != 2 {
		t.Fatalf("read after the TTL = %d, want the new row", v)
	}
}

// TestReadCache_LRUBoundKeepsHotEntries: the cache never holds more than
// its bound, a full cache evicts the least recently used entry (not
// everything), and an entry read again and again stays cached while a
// stream of cold reads (each read twice, so admitted) passes through.
func TestReadCache_LRUBoundKeepsHotEntries(t *testing.T) {
	const max = 100
	c := newReadCache(max, time.Minute)
	loads := map[int64]int{}
	read := func(id int64) int64 {
		v, err := get(c, cacheKey{keyDevice, id, 0}, func() (int64, error) { loads[id]++; return id, nil }, same)
		if err != nil || v != id {
			t.Fatalf("get %d = %d, %v", id, v, err)
		}
		return v
	}
	const hot = 10
	for id := int64(1_000); id < 100_000; id++ {
		read(id % hot) // the working set
		read(id)       // a cold device, read twice then never again
		read(id)
		if n := c.Len(); n > max {
			t.Fatalf("cache holds %d entries, bound %d", n, max)
		}
	}
	for id := int64(0); id < hot; id++ {
		if loads[id] != 2 { // the first read is not admitted
			t.Fatalf("hot device %d loaded %d times, want twice (evicted by cold reads)", id, loads[id])
		}
	}
	if c.Len() != max {
		t.Fatalf("cache holds %d entries, want it full at %d", c.Len(), max)
	}
	// The oldest cold entries went first: the last max-hot cold ids are cached.
	before := loads[99_999]
	read(99_999)
	if loads[99_999] != before {
		t.Fatal("the most recent cold read was evicted")
	}
	read(1_000)
	if loads[1_000] != 3 {
		t.Fatal("the least recently used entry was not evicted")
	}
}

// TestReadCache_ZeroDisables: a cache of 0 entries is no cache; every read
// loads.
func TestReadCache_ZeroDisables(t *testing.T) {
	c := newReadCache(0, time.Minute)
	n := 0
	for range 3 {
		get(c, cacheKey{keyUser, 1, 0}, func() (int, error) { n++; return n, nil }, same)
	}
	if n != 3 {
		t.Fatalf("loads = %d, want 3 with the cache off", n)
	}
	c.Forget() // a nil cache accepts writes' invalidations
}

// TestReadCache_InvalidateDropsFromLRU: a write's invalidation removes the
// key from the map and from the LRU list alike.
func TestReadCache_InvalidateDropsFromLRU(t *testing.T) {
	c := newReadCache(3, time.Minute)
	for id := int64(1); id <= 3; id++ {
		for range 2 { // admitted on the second read
			get(c, cacheKey{keyDevice, id, 0}, func() (int64, error) { return id, nil }, same)
		}
	}
	c.Forget(cacheKey{keyDevice, 2, 0})
	if c.Len() != 2 {
		t.Fatalf("after invalidating one key: list %d", c.Len())
	}
	v, _ := get(c, cacheKey{keyDevice, 2, 0}, func() (int64, error) { return 22, nil }, same)
	if v != 22 {
		t.Fatalf("read after the write = %d, want the new row", v)
	}
	c.Forget()
	if c.Len() != 0 {
		t.Fatalf("after invalidating all: list %d", c.Len())
	}
}

// TestReadCache_OneHitReadsAreNotAdmitted: rows read once (random reads over
// a large registry) never enter the cache, a row read a second time does,
// and is then served from it.
func TestReadCache_OneHitReadsAreNotAdmitted(t *testing.T) {
	c := newReadCache(1_000_000, time.Minute)
	loads := 0
	load := func(id int64) func() (int64, error) { return func() (int64, error) { loads++; return id, nil } }
	for id := int64(1); id <= 50_000; id++ {
		if v, err := get(c, cacheKey{keyDevice, id, 0}, load(id), same); err != nil || v != id {
			t.Fatalf("get %d = %d, %v", id, v, err)
		}
	}
	if c.Len() != 0 || loads != 50_000 {
		t.Fatalf("after 50,000 one-off reads: %d cached, %d loads; want 0 cached, 50,000 loads", c.Len(), loads)
	}
	k := cacheKey{keySensors, 7, 0}
	for i := range 5 {
		if v, _ := get(c, k, load(7), same); v != 7 {
			t.Fatalf("read %d = %d", i, v)
		}
	}
	if loads != 50_002 || c.Len() != 1 {
		t.Fatalf("a row read 5 times loaded %d times, %d cached; want 2 loads (the first is not admitted) and 1 entry", loads-50_000, c.Len())
	}
	// Same id, another kind: a distinct key, not admitted by the first's reads.
	get(c, cacheKey{keyDevice, 7, 0}, load(7), same)
	if c.Len() != 1 {
		t.Fatalf("another kind of key with the same id was admitted on its first read (%d cached)", c.Len())
	}
}

// TestReadCache_ConcurrentAdmission: concurrent readers and writers of a few
// hot keys and many cold ones (run with -race) always read the latest row
// once the writes are over.
func TestReadCache_ConcurrentAdmission(t *testing.T) {
	c := newReadCache(100, time.Minute)
	var rows [8]atomic.Int64
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5_000 {
				id := int64(i % 8)
				if i%3 == 0 {
					id = int64(8 + g*5_000 + i) // cold
				}
				get(c, cacheKey{keyDevice, id, 0}, func() (int64, error) {
					if id < 8 {
						return rows[id].Load(), nil
					}
					return id, nil
				}, same)
				if i%50 == 0 {
					rows[i%8].Add(1)
					c.Forget(cacheKey{keyDevice, int64(i % 8), 0})
				}
			}
		}()
	}
	wg.Wait()
	for id := range int64(8) {
		for range 3 {
			v, _ := get(c, cacheKey{keyDevice, id, 0}, func() (int64, error) { return rows[id].Load(), nil }, same)
			if v != rows[id].Load() {
				t.Fatalf("device %d: read %d after the writes, row is %d", id, v, rows[id].Load())
			}
		}
	}
	if c.Len() > 100 {
		t.Fatalf("%d entries, bound 100", c.Len())
	}
}
