package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
)

// evLoop drives a worker's connected devices of one edge from one
// goroutine: their sockets, taken from the connections after the edge's
// handshake, are non-blocking and registered with one epoll instance
// (edge-triggered); the loop writes each due message with write(2) in
// schedule order and reads what the server sends with read(2) when epoll
// reports bytes, the edge's wire parsing it. What the server sees is what
// goroutineLoop does: one message per device per interval, never a second
// before the first's ack (a device behind its schedule sends as soon as
// its ack comes, as a goroutine would), the edge's goodbye after the last
// ack (of every device: finishWhenAcked) or on an error. The latency is
// from just before the write to the read that completed the ack. Per
// message: one write, one read and a share of an epoll_wait, no goroutine
// switch, timer or allocation.
type evLoop struct {
	devs []loopDev // by index in the worker's clients (phase order)
	ep   int
	open int // devices not closed
	// unscheduled: nothing more is due; lastAcked counts the devices that
	// had their last ack (finishWhenAcked).
	unscheduled bool
	lastAcked   int

	w   wire
	ack string // what the edge's ack is called, for errors ("puback")

	s       schedule
	r       result
	lats    []uint32
	flights []flight // sends in order, for the ack timeout
	head    int
	pkt     []byte // scratch: the message being written
}

// wire is an edge's protocol inside evLoop.
type wire interface {
	// message appends device i's reading k, stamped at, to b.
	message(b []byte, i, k int, at time.Time) []byte
	// read reads what device i's socket holds now (edge-triggered: until
	// it is empty, or an MQTT ack is whole), reporting each ack with
	// evLoop.acked and any failure with evLoop.fail.
	read(i int)
	// bye is written before device i closes (DISCONNECT, a close frame).
	bye(i int) []byte
}

// loopDev is one device's place in its schedule and its socket.
type loopDev struct {
	fd    int
	state uint8
	hup   bool      // epoll reported hang-up or error: read after a write
	k     int       // next reading to send
	at    time.Time // schedule time of the reading in flight
	sent  time.Time // just before its write
	seq   uint32    // sends so far (matches a flight)
	out   []byte    // bytes the socket did not take yet
	// msgLeft counts the bytes at out's front that belong to the message
	// in flight (after them: control frames such as pongs).
	msgLeft int
}

const (
	devClosed uint8 = iota
	devIdle
	devBusy // a message written (or being written), its ack awaited
)

type flight struct {
	dev int32
	seq uint32
}

// epollIn: readable or hung up, edge-triggered (syscall.EPOLLET is negative).
const epollIn = syscall.EPOLLIN | syscall.EPOLLRDHUP | -syscall.EPOLLET

// init takes the connections of clients over (nil: not connected; conn
// returns client i's connection after checking its type and keeping what
// the wire needs of it): each socket is duplicated, set non-blocking and
// registered with a new epoll instance, and the connection closed.
func (l *evLoop) init(clients []client, w wire, ack string, conn func(i int, c client) (net.Conn, error)) error {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return fmt.Errorf("epoll_create: %w", err)
	}
	l.devs, l.ep, l.w, l.ack = make([]loopDev, len(clients)), ep, w, ack
	for i, c := range clients {
		if c == nil {
			continue
		}
		nc, err := conn(i, c)
		if err != nil {
			l.closeAll()
			return err
		}
		fd, err := takeFD(nc)
		if err != nil {
			l.closeAll()
			return err
		}
		ev := syscall.EpollEvent{Events: uint32(epollIn), Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			syscall.Close(fd)
			l.closeAll()
			return fmt.Errorf("epoll_ctl: %w", err)
		}
		l.devs[i] = loopDev{fd: fd, state: devIdle}
		l.open++
	}
	return nil
}

// takeFD returns a non-blocking duplicate of c's socket and closes c (the
// runtime's poller forgets its own descriptor; the socket stays open
// through the duplicate).
func takeFD(c net.Conn) (int, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("%T has no descriptor", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = syscall.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, fmt.Errorf("dup: %w", derr)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	c.Close()
	return fd, nil
}

func (l *evLoop) closeAll() {
	for i := range l.devs {
		if l.devs[i].state != devClosed {
			syscall.Close(l.devs[i].fd)
			l.devs[i].state = devClosed
		}
	}
	l.open = 0
	syscall.Close(l.ep)
}

func (l *evLoop) run(s schedule) (result, []uint32) {
	l.s = s
	defer l.closeAll()
	events := make([]syscall.EpollEvent, 512)
	n := len(l.devs)
	ci, ck := 0, 0 // the schedule's cursor: device ci's reading ck is the next due
	scheduled := n > 0
	yielded := time.Now()
	for l.open > 0 {
		now := time.Now()
		for scheduled {
			at := s.at(ci, n, ck)
			if !at.Before(s.end) {
				// Nothing more is scheduled (later entries are later still):
				// once the last acks are in, every device disconnects (not
				// each after its own last one: thousands of devices leaving
				// while others' acks are measured would measure a
				// disconnect storm).
				scheduled = false
				l.unscheduled = true
				l.finishWhenAcked()
				break
			}
			if at.After(now) {
				break
			}
			// A busy device sends this reading when its ack comes.
			if d := &l.devs[ci]; d.state == devIdle && d.k <= ck {
				l.send(ci)
			}
			if ci++; ci == n {
				ci, ck = 0, ck+1
			}
		}
		next := l.expire(time.Now())
		if scheduled {
			if at := s.at(ci, n, ck); next.IsZero() || at.Before(next) {
				next = at
			}
		}
		wait := 1000
		if !next.IsZero() {
			// Rounded up: a send is at most a millisecond late, never early.
			wait = int(min(max((time.Until(next)+time.Millisecond-1)/time.Millisecond, 0), 1000))
		}
		if l.open == 0 {
			break
		}
		// A goroutine that never yields is, after 10 ms, taken for a
		// long-running one: sysmon takes its P away in epoll_wait and, woken
		// by the return, polls every 20 µs again (a third of the loop's CPU
		// at 5,000 devices). Yielding every few milliseconds keeps it quiet
		// (not every turn: each yield wakes an idle thread to look for work;
		// sysmon looks every 10 ms at most, so one yield between two looks).
		if now.Sub(yielded) > 8*time.Millisecond {
			runtime.Gosched()
			yielded = now
		}
		ne, err := syscall.EpollWait(l.ep, events, wait)
		if err != nil {
			if err == syscall.EINTR {
				continue
			}
			// Not expected; every open device fails rather than hang.
			for i := range l.devs {
				if l.devs[i].state != devClosed {
					l.fail(i, fmt.Errorf("epoll_wait: %w", err))
				}
			}
			break
		}
		for _, ev := range events[:ne] {
			i := int(ev.Fd)
			d := &l.devs[i]
			if d.state == devClosed { // failed or finished earlier in this batch
				continue
			}
			if ev.Events&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
				d.hup = true
			}
			if ev.Events&syscall.EPOLLOUT != 0 && len(d.out) > 0 {
				l.flush(i)
			}
			if d.state != devClosed {
				l.w.read(i)
			}
		}
	}
	return l.r, l.lats
}

// expire fails the devices whose ack has not come within ackTimeout of
// their write and returns the earliest deadline still pending (zero: none).
func (l *evLoop) expire(now time.Time) time.Time {
	var next time.Time
	for l.head < len(l.flights) {
		f := l.flights[l.head]
		d := &l.devs[f.dev]
		if d.state != devBusy || d.seq != f.seq {
			l.head++ // acked (or failed) since
			continue
		}
		if dl := d.sent.Add(l.s.ackTimeout); now.Before(dl) {
			next = dl
			break
		}
		l.head++
		l.fail(int(f.dev), fmt.Errorf("%s: %w", l.ack, os.ErrDeadlineExceeded))
	}
	if l.head == len(l.flights) {
		l.flights, l.head = l.flights[:0], 0
	} else if l.head > 4096 && l.head*2 > len(l.flights) {
		l.flights = l.flights[:copy(l.flights, l.flights[l.head:])]
		l.head = 0
	}
	return next
}

// send writes device i's next reading.
func (l *evLoop) send(i int) {
	d := &l.devs[i]
	at := l.s.at(i, len(l.devs), d.k)
	now := time.Now()
	if now.Sub(at) > l.s.interval/2 {
		l.r.late++
	}
	l.r.sent++
	l.pkt = l.w.message(l.pkt[:0], i, d.k, now)
	d.at, d.sent, d.state = at, now, devBusy
	d.k++
	d.seq++
	l.flights = append(l.flights, flight{int32(i), d.seq})
	if !l.write(i, l.pkt, true) {
		return
	}
	if d.hup {
		l.w.read(i) // no further edge may come
	}
}

// write writes b for device i: at once what the socket takes, the rest
// once it is writable (after what is already waiting); msg says b is the
// message in flight. It reports whether the device is still open.
func (l *evLoop) write(i int, b []byte, msg bool) bool {
	d := &l.devs[i]
	w := 0
	if len(d.out) == 0 {
		var err error
		if w, err = writeSome(d.fd, b); err != nil {
			l.fail(i, err)
			return false
		}
	}
	if w == len(b) {
		return true
	}
	if msg {
		d.msgLeft = len(d.out) + len(b) - w
	}
	if len(d.out) == 0 {
		l.watch(i, epollIn|syscall.EPOLLOUT)
	}
	d.out = append(d.out, b[w:]...)
	return true
}

// flush writes what device i's socket did not take before.
func (l *evLoop) flush(i int) {
	d := &l.devs[i]
	w, err := writeSome(d.fd, d.out)
	if err != nil {
		l.fail(i, err)
		return
	}
	d.out = d.out[:copy(d.out, d.out[w:])]
	d.msgLeft = max(d.msgLeft-w, 0)
	if len(d.out) == 0 {
		l.watch(i, epollIn)
	}
}

func (l *evLoop) watch(i int, events int) {
	ev := syscall.EpollEvent{Events: uint32(events), Fd: int32(i)}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, l.devs[i].fd, &ev); err != nil {
		l.fail(i, fmt.Errorf("epoll_ctl: %w", err))
	}
}

// writeSome writes what the socket takes now (0 when it takes nothing).
func writeSome(fd int, b []byte) (int, error) {
	for {
		w, err := syscall.Write(fd, b)
		switch err {
		case nil:
			return w, nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		}
		return 0, fmt.Errorf("write: %w", err)
	}
}

// readSome reads what the socket holds now into b (0 when it holds
// nothing); at the end of the stream the error is io.EOF, or
// io.ErrUnexpectedEOF when the bytes before were partial.
func readSome(fd int, b []byte, partial bool) (int, error) {
	for {
		r, err := syscall.Read(fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, nil
		case err != nil:
			return 0, fmt.Errorf("read: %w", err)
		case r == 0 && partial:
			return 0, io.ErrUnexpectedEOF
		case r == 0:
			return 0, io.EOF
		}
		return r, nil
	}
}

// acked records the ack of busy device i's message, read at now (refused:
// the server did not take the reading), and sends the next reading if it
// is already due.
func (l *evLoop) acked(i int, refused bool, now time.Time) {
	d := &l.devs[i]
	if d.msgLeft > 0 {
		l.fail(i, fmt.Errorf("%s before its message was written", l.ack))
		return
	}
	switch {
	case refused:
		l.r.refused++
	default:
		l.r.acked++
		if !d.at.Before(l.s.wStart) {
			l.r.windowAcked++
			l.lats = append(l.lats, uint32(min(now.Sub(d.sent).Microseconds(), 1<<32-1)))
		}
	}
	d.state = devIdle
	switch next := l.s.at(i, len(l.devs), d.k); {
	case !next.Before(l.s.end):
		l.lastAcked++
		l.finishWhenAcked()
	case !next.After(now):
		l.send(i) // behind its schedule: at once, as a goroutine would
	}
}

// fail counts device i's error and ends it.
func (l *evLoop) fail(i int, err error) {
	l.r.errs++
	if l.r.firstErr == "" {
		l.r.firstErr = err.Error()
	}
	l.finish(i)
	l.finishWhenAcked()
}

// finishWhenAcked disconnects every device once each open one has had
// its last ack (lastAcked of them) and nothing more is scheduled.
func (l *evLoop) finishWhenAcked() {
	if l.unscheduled && l.lastAcked >= l.open {
		for i := range l.devs {
			if l.devs[i].state != devClosed {
				l.finish(i)
			}
		}
	}
}

// finish writes the wire's goodbye (if the socket takes it) and closes
// device i.
func (l *evLoop) finish(i int) {
	d := &l.devs[i]
	_, _ = syscall.Write(d.fd, l.w.bye(i))
	syscall.Close(d.fd) // also leaves the epoll set
	d.state, d.out = devClosed, nil
	l.open--
}
