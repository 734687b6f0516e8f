package limits

import (
	"sync"
	"time"
)

// BackoffConfig tunes a Backoff.
type BackoffConfig struct {
	// Free is how many failures in a row are allowed before backoff starts.
	Free int
	// Base is the first backoff window; each further failure doubles it.
	Base time.Duration
	// Max caps the window: a key is never locked out for longer, so the
	// rightful owner always gets in again.
	Max time.Duration
	// MaxKeys bounds the memory: when full, the least recently failed
	// quarter is forgotten (default 100,000).
	MaxKeys int
}

// Backoff counts failures per key (an account, an address) and imposes an
// exponentially growing wait after Free failures in a row. A success resets
// the key; a key forgotten for 2×Max starts afresh.
type Backoff struct {
	cfg BackoffConfig
	mu  sync.Mutex
	m   map[string]*backoffEntry
}

type backoffEntry struct {
	fails int
	until time.Time
	last  time.Time
}

// NewBackoff returns a Backoff.
func NewBackoff(cfg BackoffConfig) *Backoff {
	if cfg.MaxKeys <= 0 {
		cfg.MaxKeys = 100_000
	}
	if cfg.Base <= 0 {
		cfg.Base = time.Second
	}
	if cfg.Max < cfg.Base {
		cfg.Max = cfg.Base
	}
	return &Backoff{cfg: cfg, m: map[string]*backoffEntry{}}
}

// Wait returns how long key must still wait before its next attempt (0:
// go ahead).
func (b *Backoff) Wait(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if !ok || !now.Before(e.until) {
		return 0
	}
	return e.until.Sub(now)
}

// Fail records a failure of key and returns the window it now has to wait
// (0 while within Free).
func (b *Backoff) Fail(key string, now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if ok && now.Sub(e.last) > 2*b.cfg.Max {
		e.fails = 0 // quiet for long enough: start afresh
	}
	if !ok {
		if len(b.m) >= b.cfg.MaxKeys {
			b.evict()
		}
		e = &backoffEntry{}
		b.m[key] = e
	}
	e.fails++
	e.last = now
	if e.fails <= b.cfg.Free {
		return 0
	}
	d := b.cfg.Max
	if shift := e.fails - b.cfg.Free - 1; shift < 30 {
		d = min(b.cfg.Base<<shift, b.cfg.Max)
	}
	e.until = now.Add(d)
	return d
}

// Succeed forgets key's failures.
func (b *Backoff) Succeed(key string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, key)
}

// evict drops entries whose window is over and that were not seen for a
// while, and if that is not enough, any quarter of the map.
func (b *Backoff) evict() {
	now := time.Now()
	for k, e := range b.m {
		if now.Sub(e.last) > b.cfg.Max && now.After(e.until) {
			delete(b.m, k)
		}
	}
	drop := len(b.m) - b.cfg.MaxKeys*3/4
	for k := range b.m {
		if drop <= 0 {
			break
		}
		delete(b.m, k)
		drop--
	}
}
