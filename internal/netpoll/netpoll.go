// Package netpoll reads many device connections without a goroutine
// waiting on each: an epoll set (Linux) says which connections have bytes,
// a bounded pool of readers reads them, and Claim keeps one reader on a
// connection at a time. The MQTT edge (gateway/mqtt/edge.go) and the
// WebSocket edge (gateway/ws/edge.go) read their connections this way
// (issue #18: an idle device costs its socket and its state, no stack).
package netpoll

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Reading states of a connection (Claim): epoll reports a socket each time
// bytes arrive (edge-triggered), and only one reader at a time handles it;
// an event during a turn makes that reader read again instead of starting
// another.
const (
	stIdle  = iota // no reader on it: the next event hands it to one
	stBusy         // a reader handles it
	stAgain        // a reader handles it and bytes arrived meanwhile
)

// State is a connection's reading state; the zero value is idle.
type State struct{ state atomic.Int32 }

// Claim reports whether the caller should hand the connection to a reader
// (it was idle); otherwise the reader on it is told to read again.
func (c *State) Claim() bool {
	for {
		switch st := c.state.Load(); st {
		case stIdle:
			if c.state.CompareAndSwap(stIdle, stBusy) {
				return true
			}
		case stBusy:
			if c.state.CompareAndSwap(stBusy, stAgain) {
				return false
			}
		default:
			return false
		}
	}
}

// Release ends a reader's turn: true when no event came during it (the
// connection is idle again); false when bytes arrived meanwhile, and the
// reader must read again (it still holds the connection).
func (c *State) Release() bool {
	if c.state.CompareAndSwap(stBusy, stIdle) {
		return true
	}
	c.state.Store(stBusy)
	return false
}

// Pool runs at most max goroutines (run) over a FIFO of items: Push never
// blocks; a goroutine takes items until none came for idle, then ends.
type Pool[T any] struct {
	mu    sync.Mutex
	items []T
	// waiting counts goroutines blocked on wake for an item, running
	// those alive; started counts every goroutine started (tests).
	waiting, running int
	wake             chan struct{}
	max              int
	idle             time.Duration
	started          atomic.Int64
	run              func()
}

// NewPool returns a pool whose goroutines run run (which loops on Take).
func NewPool[T any](max int, idle time.Duration, run func()) *Pool[T] {
	return &Pool[T]{max: max, idle: idle, run: run, wake: make(chan struct{}, max)}
}

// Push queues x for a waiting goroutine, or starts one when fewer than
// max run; otherwise a busy one takes it next.
func (p *Pool[T]) Push(x T) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.items = append(p.items, x)
	switch {
	case p.waiting > 0:
		p.waiting--
		p.wake <- struct{}{} // never blocks: capacity max > waiting
	case p.running < p.max:
		p.running++
		p.started.Add(1)
		go p.run()
	}
}

// Take returns the next item, waiting up to idle (t: the caller's stopped
// timer, StoppedTimer) for one; false when the goroutine should end.
func (p *Pool[T]) Take(t *time.Timer) (T, bool) {
	p.mu.Lock()
	for len(p.items) == 0 {
		p.waiting++
		idle := p.idle
		p.mu.Unlock()
		t.Reset(idle)
		select {
		case <-p.wake:
			t.Stop()
			p.mu.Lock()
			continue
		case <-t.C:
		}
		p.mu.Lock()
		select {
		case <-p.wake: // Push counted on this goroutine: it stays
			continue
		default:
		}
		p.waiting--
		p.running--
		p.mu.Unlock()
		var zero T
		return zero, false
	}
	x := p.popLocked()
	p.mu.Unlock()
	return x, true
}

// Each takes items and calls f on each until none came for idle: the body
// of a pool goroutine that handles one item at a time.
func (p *Pool[T]) Each(f func(T)) {
	idle := StoppedTimer()
	for {
		x, ok := p.Take(idle)
		if !ok {
			return
		}
		f(x)
	}
}

// TryTake returns the next item if one is queued.
func (p *Pool[T]) TryTake() (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.items) == 0 {
		var zero T
		return zero, false
	}
	return p.popLocked(), true
}

func (p *Pool[T]) popLocked() T {
	x := p.items[0]
	var zero T
	p.items[0] = zero
	if p.items = p.items[1:]; len(p.items) == 0 {
		p.items = nil // drop the drained array
	}
	return x
}

// SetIdle changes how long an idle goroutine waits for an item (tests).
func (p *Pool[T]) SetIdle(d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.idle = d
}

// Idle returns how long an idle goroutine waits for an item.
func (p *Pool[T]) Idle() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

// Alive returns the goroutines running (tests).
func (p *Pool[T]) Alive() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// Started returns how many goroutines the pool has started (tests).
func (p *Pool[T]) Started() int64 { return p.started.Load() }

// StoppedTimer is a timer for Take.
func StoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// Pollable returns the socket of a plain TCP connection under wrappers
// that expose it (NetConn, as the connection caps' and net/http's do); nil
// for TLS or anything else, which the caller reads the usual way.
func Pollable(c net.Conn) syscall.RawConn {
	for {
		switch x := c.(type) {
		case *tls.Conn:
			return nil
		case syscall.Conn:
			raw, err := x.SyscallConn()
			if err != nil {
				return nil
			}
			return raw
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
}
