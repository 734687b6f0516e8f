package store

import "sync"

// Feed fans readings out to live subscribers after they were stored. A
// subscriber that does not keep up is closed (its channel is closed with
// Lagged set), never the writer blocked: the subscriber resumes from its last
// timestamp through List.
type Feed struct {
	mu   sync.Mutex
	subs map[int64]map[*Subscription]struct{}
}

// Subscription receives readings of the sensors it was opened for.
type Subscription struct {
	// C delivers readings in write order; it is closed when the subscription
	// ends (Close, or lagging behind).
	C      chan Reading
	feed   *Feed
	ids    []int64
	closed bool
	lagged bool
}

// NewFeed returns an empty feed.
func NewFeed() *Feed { return &Feed{subs: map[int64]map[*Subscription]struct{}{}} }

// Subscribe opens a subscription to sensorIDs with a buffer of size readings.
func (f *Feed) Subscribe(sensorIDs []int64, size int) *Subscription {
	s := &Subscription{C: make(chan Reading, size), feed: f, ids: sensorIDs}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, id := range sensorIDs {
		m := f.subs[id]
		if m == nil {
			m = map[*Subscription]struct{}{}
			f.subs[id] = m
		}
		m[s] = struct{}{}
	}
	return s
}

// Publish hands stored readings to subscribers without blocking.
func (f *Feed) Publish(rs []Reading) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.subs) == 0 {
		return
	}
	for _, r := range rs {
		for s := range f.subs[r.SensorID] {
			select {
			case s.C <- r:
			default:
				s.lagged = true
				f.removeLocked(s)
			}
		}
	}
}

// Lagged reports whether the subscription was closed for not keeping up.
func (s *Subscription) Lagged() bool {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	return s.lagged
}

// Close ends the subscription.
func (s *Subscription) Close() {
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	s.feed.removeLocked(s)
}

func (f *Feed) removeLocked(s *Subscription) {
	if s.closed {
		return
	}
	s.closed = true
	for _, id := range s.ids {
		if m := f.subs[id]; m != nil {
			delete(m, s)
			if len(m) == 0 {
				delete(f.subs, id)
			}
		}
	}
	close(s.C)
}
