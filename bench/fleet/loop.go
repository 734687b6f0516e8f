package main

import (
	"sync"
	"time"
)

// schedule is when a worker's devices send: device i of n sends reading k
// at t0 + interval·i/n + k·interval while that is before end; readings
// scheduled from wStart on are the measured window's.
type schedule struct {
	t0, wStart, end time.Time
	interval        time.Duration
	ackTimeout      time.Duration // the wait for one ack (an error after it)
}

// at is when device i of n sends reading k.
func (s schedule) at(i, n, k int) time.Time {
	phase := time.Duration(int64(s.interval) * int64(i) / int64(n))
	return s.t0.Add(phase + time.Duration(k)*s.interval)
}

// deviceLoop drives a worker's connected devices through a schedule and
// returns their counts and the latencies (µs) of the window's acks.
type deviceLoop interface {
	run(s schedule) (result, []uint32)
}

// goroutineLoop drives every device from its own goroutine through its
// client's blocking send (gRPC; MQTT and WebSocket where there is no
// event loop). Nil clients did not connect.
type goroutineLoop []client

func (clients goroutineLoop) run(s schedule) (result, []uint32) {
	var (
		wg   sync.WaitGroup
		rmu  sync.Mutex
		tot  result
		lats []uint32
	)
	for i, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r result
			var my []uint32
			for k := 0; ; k++ {
				at := s.at(i, len(clients), k)
				if !at.Before(s.end) {
					break
				}
				if d := time.Until(at); d > 0 {
					time.Sleep(d)
				} else if d < -s.interval/2 {
					r.late++
				}
				sent := time.Now()
				r.sent++
				ok, err := c.send(k, sent)
				if err != nil {
					r.errs++
					if r.firstErr == "" {
						r.firstErr = err.Error()
					}
					break
				}
				if !ok {
					r.refused++
					continue
				}
				r.acked++
				if !at.Before(s.wStart) {
					r.windowAcked++
					my = append(my, uint32(min(time.Since(sent).Microseconds(), 1<<32-1)))
				}
			}
			c.close()
			rmu.Lock()
			tot.add(r)
			lats = append(lats, my...)
			rmu.Unlock()
		}()
	}
	wg.Wait()
	return tot, lats
}

// add counts r into t (t keeps its first error).
func (t *result) add(r result) {
	t.sent += r.sent
	t.acked += r.acked
	t.refused += r.refused
	t.errs += r.errs
	t.late += r.late
	t.windowAcked += r.windowAcked
	if t.firstErr == "" {
		t.firstErr = r.firstErr
	}
}
