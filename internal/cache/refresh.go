package cache

import (
	"context"
	"time"
)

// Refresh ahead (NewRefreshing): a cache in front of per-key registry reads
// that the same keys hit again and again (a device's token generation and its
// sensor, asked by every reading a device sends) would otherwise reload each
// key on its own once per TTL: with many devices each sending rarely that is
// one registry query for every other reading. Instead one goroutine wakes
// every quarter TTL while some entries are being read, and reloads together
// the entries read since their last load that have less than dueLeft of
// their TTL left; readers keep hitting the cache and never wait for it. The goroutine
// ends when a round finds nothing to refresh and the next hit starts it
// again, so an idle cache holds no goroutine.
//
// Over a source with a change counter (Refresher.Changes: the registry's,
// bumped in the transaction of every write that can change an answer) a
// round first reads the counter, and the entries it last read under the
// same value are extended without being read again: with nothing written,
// a round costs one tiny query however many entries are in use.

// NewRefreshing returns a cache configured by cfg whose entries are
// reloaded many at a time by refresh ahead of their expiry: entries read
// since they were loaded are passed to it between 3/16 and 7/16 of a TTL
// before they expire (a quarter TTL in steady state), and the answers it returns live a new TTL from the moment the
// call started. Entries it leaves out expire as usual (the next Load asks
// its load for them, one by one), so a refresh never extends an answer the
// source did not give again; errors are never refreshed.
func NewRefreshing[K comparable, V any](cfg Config, refresh func(old map[K]V) map[K]V) *Cache[K, V] {
	return NewRefreshingWith(cfg, Refresher[K, V]{Batch: refresh})
}

// Refresher is how a refreshing cache (NewRefreshingWith) reloads the
// entries in use.
type Refresher[K comparable, V any] struct {
	// Batch returns the source's current answers for the keys of old that
	// it still has; the keys it leaves out expire (required).
	Batch func(old map[K]V) map[K]V
	// Changes, when set, reads the source's change counter: a number that
	// every write that can change an answer Batch gives increases, in the
	// same transaction as the write (an error: unknown). A round then
	// reloads only the due entries not read under the value it reads, and
	// extends the others without reading them (refreshRound).
	Changes func() (int64, error)
	// Counted reports whether the answer Batch gave for k is covered by
	// Changes: read from the source itself (past any other cache) after
	// Changes was read. Nil: every answer is.
	Counted func(k K, v V) bool
	// Recheck, when set, is asked about each entry a round would extend
	// unread whether its answer is still valid by whatever else it
	// depends on (e.g. a token's signing key); an entry it refuses is not
	// extended and expires. ctx bounds the round. Nil: all are valid.
	Recheck func(ctx context.Context, k K, v V) bool
}

// NewRefreshingWith is NewRefreshing with a Refresher: with a change
// counter (Refresher.Changes), a round in which nothing the answers depend
// on was written costs one read of the counter instead of one read of
// every entry in use.
func NewRefreshingWith[K comparable, V any](cfg Config, r Refresher[K, V]) *Cache[K, V] {
	c := New[K, V](cfg)
	c.refresh = r
	return c
}

// dueLeft is the share of its TTL an entry has left (in sixteenths) below
// which a round refreshes it. Rounds come every 4/16 TTL, so an entry
// refreshed by one round has 12/16 left at the next, 8/16 at the second —
// just over 7/16, not due — and 4/16 at the third, which refreshes it: each
// entry in use is reloaded every 3/4 TTL, with a quarter TTL for the round
// to finish before it would expire. (With a half TTL, the second round's
// clock jitter made about every other entry due there: reloaded every half
// TTL, a third more rows read per second.)
const dueLeft = 7

// startRefresh starts the refresh goroutine unless it runs (c.mu held).
func (c *Cache[K, V]) startRefresh() {
	if c.refreshing {
		return
	}
	c.refreshing = true
	go c.refreshLoop()
}

func (c *Cache[K, V]) refreshLoop() {
	t := time.NewTicker(c.ttl / 4)
	defer t.Stop()
	for range t.C {
		if !c.refreshRound() {
			return
		}
	}
}

// refreshRound refreshes the due entries; it reports false (and marks the
// goroutine stopped) when no entry was read since its load, so nothing is
// worth refreshing.
//
// With a change counter (Refresher.Changes), the round reads the counter
// first, then reloads through Batch only the due entries that were not read
// under the value it got, and extends the others. Why an extended answer
// keeps the bound (an answer is served at most a TTL after a moment at
// which the source still gave it):
//
//   - An entry is counted with value c only when a round read the counter
//     (c, at time tc) and THEN read the entry's answer from the source
//     itself, at tr ≥ tc, past any other cache (Refresher.Counted). So the
//     answer is the source's state at tr, which is its state at tc plus the
//     writes committed in (tc, tr].
//   - Every write that can change an answer increases the counter in its
//     own transaction, so it is visible in the counter exactly when it is
//     visible in the rows; the counter never goes back, and a rolled-back
//     write bumps nothing.
//   - A later round starts at s, reads the counter at tv ≥ s and gets c
//     again: no such write committed in (tc, tv] — one committed in
//     (tc, tr] would show in the counter at tv > tr. So the answer is the
//     source's state at tv, and extending it to s + TTL ≤ tv + TTL serves
//     it at most a TTL after tv: the bound of a fresh read at tv.
//   - Anything else leaves an entry uncounted, and it is read again by
//     the next round that finds it due (with the counter read before it):
//     answers loaded one by one (Load, Put: a cache miss reads through the
//     source's own caches, e.g. the SQLite registry's row cache, possibly
//     older than any counter value this round could compare), answers
//     Counted rejects, and every answer when the counter read failed.
//   - A Forget during the round discards all of the round's work, as
//     before, and an entry stored anew meanwhile (uncounted) is never
//     extended by a round that saw it counted.
func (c *Cache[K, V]) refreshRound() bool {
	start := c.now()
	c.mu.Lock()
	// The due entries, with what they were when the round saw them: in
	// steady state (nothing written) every one of them is extended through
	// its pointer, without hashing its key (a token is ~200 bytes).
	var due []dueEntry[K, V]
	pending := false
	for el := c.lru.Front(); el != nil; el = el.Next() {
		e := el.Value.(*entry[K, V])
		if !e.used || e.err != nil || !start.Before(e.until) {
			continue
		}
		pending = true
		if e.until.Sub(start) < c.ttl*dueLeft/16 {
			due = append(due, dueEntry[K, V]{e: e, k: e.k, v: e.v, counted: e.counted, ver: e.ver})
		}
	}
	if !pending {
		c.refreshing = false
		c.mu.Unlock()
		return false
	}
	gen := c.gen
	c.mu.Unlock()
	if len(due) == 0 {
		return true
	}
	ver, counted := int64(0), false
	if c.refresh.Changes != nil {
		if v, err := c.refresh.Changes(); err == nil {
			ver, counted = v, true
		}
	}
	var kept []*entry[K, V]
	read := map[K]V{}
	var ctx context.Context
	for _, d := range due {
		if !counted || !d.counted || d.ver != ver {
			read[d.k] = d.v
			continue
		}
		if c.refresh.Recheck != nil {
			if ctx == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), max(c.ttl/4, 10*time.Millisecond))
				defer cancel()
			}
			if !c.refresh.Recheck(ctx, d.k, d.v) {
				continue
			}
		}
		kept = append(kept, d.e)
	}
	var fresh map[K]V
	if len(read) > 0 {
		fresh = c.refresh.Batch(read)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen { // a Forget ran meanwhile: its keys may be among the answers
		return true
	}
	until := start.Add(c.ttl)
	for _, e := range kept {
		// An entry stored anew meanwhile is no longer counted; one
		// evicted meanwhile is no longer in the cache, and changing it
		// changes nothing anyone reads.
		if e.counted && e.ver == ver && e.err == nil {
			e.until, e.used = until, false
		}
	}
	for k, v := range fresh {
		if el, ok := c.m[k]; ok {
			if _, asked := read[k]; asked {
				e := el.Value.(*entry[K, V])
				e.v, e.until, e.used = v, until, false
				e.counted = counted && (c.refresh.Counted == nil || c.refresh.Counted(k, v))
				e.ver = ver
			}
		}
	}
	return true
}

// dueEntry is an entry a refresh round found due, as it found it.
type dueEntry[K comparable, V any] struct {
	e       *entry[K, V]
	k       K
	v       V
	counted bool
	ver     int64
}
