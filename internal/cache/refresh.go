package cache

import "time"

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

// NewRefreshing returns a cache configured by cfg whose entries are
// reloaded many at a time by refresh ahead of their expiry: entries read
// since they were loaded are passed to it between 3/16 and 7/16 of a TTL
// before they expire (a quarter TTL in steady state), and the answers it returns live a new TTL from the moment the
// call started. Entries it leaves out expire as usual (the next Load asks
// its load for them, one by one), so a refresh never extends an answer the
// source did not give again; errors are never refreshed.
func NewRefreshing[K comparable, V any](cfg Config, refresh func(old map[K]V) map[K]V) *Cache[K, V] {
	c := New[K, V](cfg)
	c.refresh = refresh
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

// refreshRound refreshes the due entries in one Refresh call; it reports
// false (and marks the goroutine stopped) when no entry was read since its
// load, so nothing is worth refreshing.
func (c *Cache[K, V]) refreshRound() bool {
	start := c.now()
	c.mu.Lock()
	old := map[K]V{}
	pending := false
	for k, el := range c.m {
		e := el.Value.(*entry[K, V])
		if !e.used || e.err != nil || !start.Before(e.until) {
			continue
		}
		pending = true
		if e.until.Sub(start) < c.ttl*dueLeft/16 {
			old[k] = e.v
		}
	}
	if !pending {
		c.refreshing = false
		c.mu.Unlock()
		return false
	}
	gen := c.gen
	c.mu.Unlock()
	if len(old) == 0 {
		return true
	}
	fresh := c.refresh(old)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen { // a Forget ran meanwhile: its keys may be among the answers
		return true
	}
	until := start.Add(c.ttl)
	for k, v := range fresh {
		if el, ok := c.m[k]; ok {
			if _, asked := old[k]; asked {
				e := el.Value.(*entry[K, V])
				e.v, e.until, e.used = v, until, false
			}
		}
	}
	return true
}
