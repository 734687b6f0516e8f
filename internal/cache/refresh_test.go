package cache

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestCache_RefreshAhead: entries read again are reloaded together by one
// Refresh call before they expire, so a reader keeps hitting without a load
// of its own; a changed answer is seen within the TTL; an entry Refresh
// leaves out expires and is loaded on its own; an entry nobody reads is not
// refreshed, and the refresh goroutine ends when nothing is read.
func TestCache_RefreshAhead(t *testing.T) {
	const ttl = 200 * time.Millisecond
	var mu sync.Mutex
	rows := map[int]int{1: 10, 2: 20, 3: 30}
	var calls, batched atomic.Int64
	c := NewRefreshing(Config{TTL: ttl}, func(old map[int]int) map[int]int {
		calls.Add(1)
		batched.Add(int64(len(old)))
		mu.Lock()
		defer mu.Unlock()
		out := map[int]int{}
		for k := range old {
			if v, ok := rows[k]; ok {
				out[k] = v
			}
		}
		return out
	})
	var loads atomic.Int64
	load := func(k int) func() (int, error) {
		return func() (int, error) {
			loads.Add(1)
			mu.Lock()
			defer mu.Unlock()
			return rows[k], nil
		}
	}
	for k := 1; k <= 3; k++ {
		c.Load(k, load(k))
	}
	// Read keys 1 and 2 for 5 TTLs: no load of their own after the first.
	deadline := time.Now().Add(5 * ttl)
	for time.Now().Before(deadline) {
		for k := 1; k <= 2; k++ {
			if v, _ := c.Load(k, load(k)); v != rows[k] && v != rows[k]-1 {
				t.Fatalf("key %d: %d", k, v)
			}
		}
		time.Sleep(ttl / 20)
	}
	if n := loads.Load(); n != 3 {
		t.Fatalf("%d loads while reading refreshed keys, want the first 3 only", n)
	}
	if calls.Load() == 0 || batched.Load() < 2*calls.Load()-1 {
		t.Fatalf("%d refresh calls for %d entries: not batched", calls.Load(), batched.Load())
	}
	// A change is seen within the TTL of the last refresh.
	mu.Lock()
	rows[1] = 11
	mu.Unlock()
	changed := time.Now()
	for {
		v, _ := c.Load(1, load(1))
		if v == 11 {
			break
		}
		if time.Since(changed) > ttl+ttl/4 {
			t.Fatalf("change not seen %v after it (TTL %v)", time.Since(changed), ttl)
		}
		time.Sleep(ttl / 40)
	}
	// Refresh leaves key 2 out (gone from the registry): it expires and the
	// next read loads it on its own.
	mu.Lock()
	delete(rows, 2)
	mu.Unlock()
	before := loads.Load()
	gone := time.Now()
	for loads.Load() == before {
		c.Load(2, load(2))
		if time.Since(gone) > ttl+ttl/4 {
			t.Fatal("an entry Refresh left out was still served after its TTL")
		}
		time.Sleep(ttl / 40)
	}
	// Key 3 was never read again: it was never refreshed, it expired.
	if _, ok, _ := c.Get(3); ok {
		t.Fatal("an entry nobody read was refreshed")
	}
	// Nothing read: the refresh goroutine ends.
	time.Sleep(2 * ttl)
	c.mu.Lock()
	running := c.refreshing
	c.mu.Unlock()
	if running {
		t.Fatal("the refresh goroutine runs with nothing read")
	}
}

// TestCache_RefreshDroppedByForget: a refresh that ran while a Forget ran
// does not store its answers (they may predate the write).
func TestCache_RefreshDroppedByForget(t *testing.T) {
	var clock atomic.Int64 // the refresh goroutine reads the clock too
	clock.Store(time.Unix(1000, 0).UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	var forget atomic.Bool
	forget.Store(true)
	var c *Cache[int, int]
	c = NewRefreshing(Config{TTL: time.Minute, Now: func() time.Time { return time.Unix(0, clock.Load()) }},
		func(old map[int]int) map[int]int {
			if forget.Load() {
				c.Forget(2) // a write in this process while the batch was read
			}
			return map[int]int{1: 100}
		})
	c.Put(1, 1)
	c.Get(1) // read: due for refresh
	advance(36 * time.Second)
	if !c.refreshRound() {
		t.Fatal("a read entry was not due")
	}
	if v, ok, _ := c.Get(1); !ok || v != 1 {
		t.Fatalf("got %d, %v: the refresh raced with Forget and must not be stored", v, ok)
	}
	forget.Store(false)
	if !c.refreshRound() {
		t.Fatal("a read entry was not due")
	}
	if v, _, _ := c.Get(1); v != 100 {
		t.Fatalf("got %d, want the refreshed 100", v)
	}
	advance(time.Minute - time.Nanosecond) // a TTL from the refresh's start
	if _, ok, _ := c.Get(1); !ok {
		t.Fatal("the refreshed answer must live a TTL from the refresh")
	}
	advance(time.Nanosecond)
	if _, ok, _ := c.Get(1); ok {
		t.Fatal("the refreshed answer outlived its TTL")
	}
}

// TestCache_RefreshEveryThreeQuartersTTL: a refreshed entry in use is not
// refreshed again by the round half a TTL later even when that round runs a
// little late (clock jitter), only by the next one, a quarter TTL before it
// would expire: rounds read each entry in use every 3/4 TTL, not every 1/2.
func TestCache_RefreshEveryThreeQuartersTTL(t *testing.T) {
	const ttl = time.Minute
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	var calls atomic.Int64
	c := NewRefreshing(Config{TTL: ttl, Now: func() time.Time { return time.Unix(0, clock.Load()) }},
		func(old map[int]int) map[int]int {
			calls.Add(1)
			return map[int]int{1: 1}
		})
	c.Put(1, 1)
	c.Get(1)
	advance(ttl * 3 / 4) // a quarter TTL left: due
	c.refreshRound()
	if calls.Load() != 1 {
		t.Fatalf("%d refresh calls with a quarter TTL left, want 1", calls.Load())
	}
	for round := 1; round <= 3; round++ {
		c.Get(1)
		advance(ttl/4 + time.Millisecond) // the next round, a little late
		c.refreshRound()
		want := int64(1)
		if round == 3 {
			want = 2
		}
		if calls.Load() != want {
			t.Fatalf("round %d after the refresh: %d refresh calls, want %d", round, calls.Load(), want)
		}
	}
	if _, ok, _ := c.Get(1); !ok {
		t.Fatal("the entry refreshed a quarter TTL before its expiry is gone")
	}
}

// BenchmarkRefreshAhead_ReloadsPerEntry measures how often refresh rounds
// reload an entry in use (the registry rows the refresh-ahead caches read):
// 2,000 keys each read every TTL/2 (a device sending once a second against
// the 2 s bound), rounds on the real clock, for 8 TTLs. Reported:
// reloads/entry/TTL (each entry must be reloaded at least once per TTL to
// stay cached; at a 1/2-TTL threshold it was up to twice).
//
//	go test ./internal/cache/ -run '^$' -bench RefreshAhead_ReloadsPerEntry -benchtime 1x
func BenchmarkRefreshAhead_ReloadsPerEntry(b *testing.B) {
	const ttl, keys, ttls = 200 * time.Millisecond, 2000, 8
	for range b.N {
		var reloads atomic.Int64
		c := NewRefreshing(Config{TTL: ttl}, func(old map[int]int) map[int]int {
			reloads.Add(int64(len(old)))
			return old
		})
		for k := range keys {
			c.Put(k, k)
		}
		start := time.Now()
		for time.Since(start) < ttls*ttl {
			for k := range keys {
				c.Load(k, func() (int, error) { return k, nil })
			}
			time.Sleep(ttl / 2)
		}
		b.ReportMetric(float64(reloads.Load())/keys/ttls, "reloads/entry/TTL")
	}
}

// countedSource is a source with a change counter for the counted refresh
// tests: rows, the counter, and what Batch was asked.
type countedSource struct {
	mu      sync.Mutex
	rows    map[int]int
	changes int64
	failing bool // the counter read fails
	batches []map[int]int
}

func (s *countedSource) write(k, v int, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if deleted {
		delete(s.rows, k)
	} else {
		s.rows[k] = v
	}
	s.changes++
}

func (s *countedSource) refresher() Refresher[int, int] {
	return Refresher[int, int]{
		Batch: func(old map[int]int) map[int]int {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.batches = append(s.batches, old)
			out := map[int]int{}
			for k := range old {
				if v, ok := s.rows[k]; ok {
					out[k] = v
				}
			}
			return out
		},
		Changes: func() (int64, error) {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.failing {
				return 0, errors.New("counter unreadable")
			}
			return s.changes, nil
		},
	}
}

// read returns the keys Batch was asked since the last call, sorted.
func (s *countedSource) read() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []int
	for _, b := range s.batches {
		for k := range b {
			out = append(out, k)
		}
	}
	s.batches = nil
	slices.Sort(out)
	return out
}

// TestCache_RefreshCounted: over a source with a change counter, a round in
// which nothing was written reads no entry and extends the entries it read
// under the same counter value; a write (a changed or deleted row) makes
// the next round read every due entry, and the change is served at most a
// TTL after the round that could have seen it; entries loaded one by one
// are read by the next round before any round extends them; a failed
// counter read falls back to reading every due entry.
func TestCache_RefreshCounted(t *testing.T) {
	const ttl = time.Minute
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	src := &countedSource{rows: map[int]int{1: 10, 2: 20, 3: 30}}
	c := NewRefreshingWith(Config{TTL: ttl, Now: func() time.Time { return time.Unix(0, clock.Load()) }}, src.refresher())
	load := func(k int) func() (int, error) {
		return func() (int, error) {
			src.mu.Lock()
			defer src.mu.Unlock()
			return src.rows[k], nil
		}
	}
	// round: every key of use read, then a round a quarter TTL before
	// their expiry (as the refresh goroutine runs it).
	round := func(use ...int) {
		t.Helper()
		for _, k := range use {
			if _, ok, _ := c.Get(k); !ok {
				t.Fatalf("key %d not cached", k)
			}
		}
		advance(ttl * 3 / 4)
		c.refreshRound()
	}
	get := func(k int) (int, bool) { v, ok, _ := c.Get(k); return v, ok }
	c.Load(1, load(1))
	c.Load(2, load(2))
	round(1, 2)
	if got := src.read(); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("first round read %v, want the entries loaded one by one [1 2]", got)
	}
	for i := range 3 {
		round(1, 2)
		if got := src.read(); len(got) != 0 {
			t.Fatalf("round %d with nothing written read %v", i, got)
		}
	}
	advance(ttl/4 - time.Nanosecond) // just before the last extension ends
	if v, ok := get(1); !ok || v != 10 {
		t.Fatalf("an extended entry: %d, %v", v, ok)
	}
	// A write: the next round reads every due entry and serves the change.
	src.write(1, 11, false)
	round(1, 2)
	if got := src.read(); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("the round after a write read %v, want [1 2]", got)
	}
	if v, _ := get(1); v != 11 {
		t.Fatalf("key 1 = %d after the round that followed its write, want 11", v)
	}
	// A deletion: the round leaves the entry out and it expires a TTL after
	// the previous round's start, whatever the counter says later.
	src.write(2, 0, true)
	round(1, 2)
	if got := src.read(); !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("the round after a deletion read %v, want [1 2]", got)
	}
	advance(ttl / 4)
	if _, ok := get(2); ok {
		t.Fatal("a deleted entry was served a TTL after the last round that read it")
	}
	// A key loaded one by one while nothing is written is read by the next
	// round (it was not read under a counter value); the others are not.
	c.Forget()
	c.Load(1, load(1))
	round(1)
	round(1)
	if got := src.read(); !slices.Equal(got, []int{1}) {
		t.Fatalf("two rounds read %v, want [1] once", got)
	}
	c.Load(3, load(3))
	round(1, 3)
	if got := src.read(); !slices.Equal(got, []int{3}) {
		t.Fatalf("round after a load read %v, want only the loaded key [3]", got)
	}
	round(1, 3)
	if got := src.read(); len(got) != 0 {
		t.Fatalf("round read %v with nothing written", got)
	}
	// Put (an answer from elsewhere) also clears the counter value.
	c.Put(3, 33)
	round(1, 3)
	if got := src.read(); !slices.Equal(got, []int{3}) {
		t.Fatalf("round after a Put read %v, want [3]", got)
	}
	if v, _ := get(3); v != 30 {
		t.Fatalf("key 3 = %d, want the source's 30", v)
	}
	// The counter cannot be read: every due entry is read, and none of
	// them counts as read under a counter value afterwards.
	src.mu.Lock()
	src.failing = true
	src.mu.Unlock()
	round(1, 3)
	if got := src.read(); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("round with an unreadable counter read %v, want [1 3]", got)
	}
	src.mu.Lock()
	src.failing = false
	src.mu.Unlock()
	round(1, 3)
	if got := src.read(); !slices.Equal(got, []int{1, 3}) {
		t.Fatalf("round after an unreadable counter read %v, want [1 3]", got)
	}
	round(1, 3)
	if got := src.read(); len(got) != 0 {
		t.Fatalf("round read %v with nothing written", got)
	}
}

// TestCache_RefreshCountedRecheckAndForget: an entry Recheck rejects is not
// extended (it expires), one Counted rejects is read by every round, and a
// Forget during a round discards the round's extensions too.
func TestCache_RefreshCountedRecheckAndForget(t *testing.T) {
	const ttl = time.Minute
	var clock atomic.Int64
	clock.Store(time.Unix(1000, 0).UnixNano())
	advance := func(d time.Duration) { clock.Add(int64(d)) }
	src := &countedSource{rows: map[int]int{1: 10, 2: 20, 3: 30}}
	r := src.refresher()
	var rejected atomic.Int64 // the key Recheck rejects
	r.Recheck = func(_ context.Context, k, _ int) bool { return k != int(rejected.Load()) }
	r.Counted = func(k, _ int) bool { return k != 3 }
	var c *Cache[int, int]
	var forget atomic.Bool
	changes := r.Changes
	r.Changes = func() (int64, error) {
		if forget.Load() {
			c.Forget(99) // a write in this process while the round runs
		}
		return changes()
	}
	c = NewRefreshingWith(Config{TTL: ttl, Now: func() time.Time { return time.Unix(0, clock.Load()) }}, r)
	round := func() {
		for k := 1; k <= 3; k++ {
			if _, ok, _ := c.Get(k); !ok {
				t.Fatalf("key %d not cached", k)
			}
		}
		advance(ttl * 3 / 4)
		c.refreshRound()
	}
	for k := 1; k <= 3; k++ {
		c.Put(k, k*10)
	}
	round()
	if got := src.read(); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("first round read %v", got)
	}
	round()
	if got := src.read(); !slices.Equal(got, []int{3}) {
		t.Fatalf("round read %v, want only the key Counted rejects [3]", got)
	}
	forget.Store(true)
	round() // extends nothing: entries 1 and 2 keep their last expiry
	forget.Store(false)
	if got := src.read(); !slices.Equal(got, []int{3}) {
		t.Fatalf("round read %v, want [3]", got)
	}
	advance(ttl / 4)
	if _, ok, _ := c.Get(1); ok {
		t.Fatal("a round that raced with Forget extended an entry")
	}
	c.Put(1, 10)
	c.Put(2, 20)
	c.Put(3, 30)
	round()
	src.read()
	rejected.Store(2)
	round()
	advance(ttl / 4)
	if _, ok, _ := c.Get(2); ok {
		t.Fatal("an entry Recheck rejected was extended")
	}
	if _, ok, _ := c.Get(1); !ok {
		t.Fatal("an entry Recheck kept was not extended")
	}
}
