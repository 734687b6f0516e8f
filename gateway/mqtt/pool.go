package mqtt

import (
	"sync"
	"sync/atomic"
	"time"
)

// pool runs at most max goroutines (run) over a FIFO of items: push never
// blocks; a goroutine takes items until none came for idle, then ends. It
// serves the connection readers (edge.go) and the ingest workers (a
// session per item).
type pool[T any] struct {
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

func newPool[T any](max int, idle time.Duration, run func()) *pool[T] {
	return &pool[T]{max: max, idle: idle, run: run, wake: make(chan struct{}, max)}
}

// push queues x for a waiting goroutine, or starts one when fewer than
// max run; otherwise a busy one takes it next.
func (p *pool[T]) push(x T) {
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

// take returns the next item, waiting up to idle (t: the caller's stopped
// timer) for one; false when the goroutine should end.
func (p *pool[T]) take(t *time.Timer) (T, bool) {
	p.mu.Lock()
	for len(p.items) == 0 {
		p.waiting++
		p.mu.Unlock()
		t.Reset(p.idle)
		select {
		case <-p.wake:
			t.Stop()
			p.mu.Lock()
			continue
		case <-t.C:
		}
		p.mu.Lock()
		select {
		case <-p.wake: // push counted on this goroutine: it stays
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

// tryTake returns the next item if one is queued.
func (p *pool[T]) tryTake() (T, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.items) == 0 {
		var zero T
		return zero, false
	}
	return p.popLocked(), true
}

func (p *pool[T]) popLocked() T {
	x := p.items[0]
	var zero T
	p.items[0] = zero
	if p.items = p.items[1:]; len(p.items) == 0 {
		p.items = nil // drop the drained array
	}
	return x
}

// alive returns the goroutines running (tests).
func (p *pool[T]) alive() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.running
}

// stoppedTimer is a timer for take.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}
