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
				c.invalidate()
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
