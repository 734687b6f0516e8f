package main

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"syscall"
	"time"
)

// mqttLoop drives a worker's connected MQTT devices from one goroutine:
// their sockets, taken from the connections after CONNECT, are
// non-blocking and registered with one epoll instance (edge-triggered);
// the loop writes each due PUBLISH with write(2) in schedule order and
// reads PUBACKs with read(2) when epoll reports bytes. What the server sees
// is what goroutineLoop does: one QoS 1 PUBLISH per device per interval
// (same topic, packet id and payload), never a second before the first's
// PUBACK (a device behind its schedule sends as soon as its PUBACK comes,
// as a goroutine would), DISCONNECT after its last PUBACK or on an error.
// The latency is from just before the write to the read that completed
// the PUBACK. Per message: one write, one read and a share of an
// epoll_wait, no goroutine switch, timer or allocation.
type mqttLoop struct {
	devs []mqttDev // by index in the worker's clients (phase order)
	ep   int
	open int // devices not closed
	// unscheduled: nothing more is due; lastAcked counts the devices that
	// had their last PUBACK (finishWhenAcked).
	unscheduled bool
	lastAcked   int

	s       schedule
	r       result
	lats    []uint32
	flights []flight // sends in order, for the ack timeout
	head    int
	pkt     []byte // scratch: the PUBLISH being written

	onPartial func(i int) // tests: a read returned part of a PUBACK
}

type mqttDev struct {
	fd    int
	d     device
	topic string
	state uint8
	hup   bool      // epoll reported hang-up or error: read after a write
	k     int       // next reading to send
	at    time.Time // schedule time of the reading in flight
	sent  time.Time // just before its write
	pid   uint16
	seq   uint32 // sends so far (matches a flight)
	got   int
	ack   [4]byte
	out   []byte // rest of a PUBLISH the socket did not take
}

const (
	devClosed uint8 = iota
	devIdle
	devBusy // a PUBLISH written (or being written), its PUBACK awaited
)

type flight struct {
	dev int32
	seq uint32
}

// epollIn: readable or hung up, edge-triggered (syscall.EPOLLET is negative).
const epollIn = syscall.EPOLLIN | syscall.EPOLLRDHUP | -syscall.EPOLLET

// newMQTTLoop takes the sockets of the connected MQTT clients (nil: not
// connected) over: each is duplicated, set non-blocking and registered
// with a new epoll instance, and the connection closed.
func newMQTTLoop(clients []client) (deviceLoop, error) {
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create: %w", err)
	}
	l := &mqttLoop{devs: make([]mqttDev, len(clients)), ep: ep}
	for i, c := range clients {
		if c == nil {
			continue
		}
		m, ok := c.(*mqttClient)
		if !ok {
			l.closeAll()
			return nil, fmt.Errorf("client %d is a %T, not MQTT", i, c)
		}
		fd, err := takeFD(m.c)
		if err != nil {
			l.closeAll()
			return nil, err
		}
		ev := syscall.EpollEvent{Events: uint32(epollIn), Fd: int32(i)}
		if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
			syscall.Close(fd)
			l.closeAll()
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
		l.devs[i] = mqttDev{fd: fd, d: m.d, topic: m.topic, state: devIdle}
		l.open++
	}
	return l, nil
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

func (l *mqttLoop) closeAll() {
	for i := range l.devs {
		if l.devs[i].state != devClosed {
			syscall.Close(l.devs[i].fd)
			l.devs[i].state = devClosed
		}
	}
	l.open = 0
	syscall.Close(l.ep)
}

func (l *mqttLoop) run(s schedule) (result, []uint32) {
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
				// once the last PUBACKs are in, every device disconnects
				// (not each after its own last one: thousands of devices
				// leaving while others' acks are measured would measure a
				// disconnect storm).
				scheduled = false
				l.unscheduled = true
				l.finishWhenAcked()
				break
			}
			if at.After(now) {
				break
			}
			// A busy device sends this reading when its PUBACK comes.
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
			if d.state == devBusy {
				l.readAck(i)
			}
			// Bytes for an idle device stay in the socket and are read as
			// its next PUBACK (a mismatch then), as a blocking read would.
		}
	}
	return l.r, l.lats
}

// expire fails the devices whose PUBACK has not come within ackTimeout of
// their write and returns the earliest deadline still pending (zero: none).
func (l *mqttLoop) expire(now time.Time) time.Time {
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
		l.fail(int(f.dev), fmt.Errorf("puback: %w", os.ErrDeadlineExceeded))
	}
	if l.head == len(l.flights) {
		l.flights, l.head = l.flights[:0], 0
	} else if l.head > 4096 && l.head*2 > len(l.flights) {
		l.flights = l.flights[:copy(l.flights, l.flights[l.head:])]
		l.head = 0
	}
	return next
}

// send writes device i's next reading as a QoS 1 PUBLISH.
func (l *mqttLoop) send(i int) {
	d := &l.devs[i]
	at := l.s.at(i, len(l.devs), d.k)
	now := time.Now()
	if now.Sub(at) > l.s.interval/2 {
		l.r.late++
	}
	l.r.sent++
	d.pid = uint16(d.k%65535 + 1)
	l.pkt = appendPublish(l.pkt[:0], d.topic, d.pid, d.d, d.k, now)
	d.at, d.sent, d.got, d.state = at, now, 0, devBusy
	d.k++
	d.seq++
	l.flights = append(l.flights, flight{int32(i), d.seq})
	w, err := write(d.fd, l.pkt)
	if err != nil {
		l.fail(i, err)
		return
	}
	if w < len(l.pkt) {
		d.out = append(d.out[:0], l.pkt[w:]...)
		l.watch(i, epollIn|syscall.EPOLLOUT)
		return
	}
	if d.hup {
		l.readAck(i) // no further edge may come
	}
}

// flush writes the rest of device i's PUBLISH.
func (l *mqttLoop) flush(i int) {
	d := &l.devs[i]
	w, err := write(d.fd, d.out)
	if err != nil {
		l.fail(i, err)
		return
	}
	d.out = d.out[:copy(d.out, d.out[w:])]
	if len(d.out) == 0 {
		l.watch(i, epollIn)
	}
}

func (l *mqttLoop) watch(i int, events int) {
	ev := syscall.EpollEvent{Events: uint32(events), Fd: int32(i)}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, l.devs[i].fd, &ev); err != nil {
		l.fail(i, fmt.Errorf("epoll_ctl: %w", err))
	}
}

// write writes what the socket takes now (0 when it takes nothing).
func write(fd int, b []byte) (int, error) {
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

// readAck reads what there is of busy device i's PUBACK (edge-triggered:
// until it is whole or the socket is empty) and, once whole, records the
// ack and sends the next reading if it is already due.
func (l *mqttLoop) readAck(i int) {
	d := &l.devs[i]
	for d.got < len(d.ack) {
		r, err := syscall.Read(d.fd, d.ack[d.got:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return
		case err != nil:
			l.fail(i, fmt.Errorf("puback: read: %w", err))
			return
		case r == 0:
			e := io.EOF
			if d.got > 0 {
				e = io.ErrUnexpectedEOF
			}
			l.fail(i, fmt.Errorf("puback: %w", e))
			return
		}
		d.got += r
		if d.got < len(d.ack) && l.onPartial != nil {
			l.onPartial(i)
		}
	}
	now := time.Now()
	if len(d.out) > 0 {
		l.fail(i, fmt.Errorf("puback %x before its publish was written", d.ack))
		return
	}
	if d.ack[0] != 0x40 || binary.BigEndian.Uint16(d.ack[2:]) != d.pid {
		l.fail(i, fmt.Errorf("puback %x for packet %d", d.ack, d.pid))
		return
	}
	l.r.acked++
	if !d.at.Before(l.s.wStart) {
		l.r.windowAcked++
		l.lats = append(l.lats, uint32(min(now.Sub(d.sent).Microseconds(), 1<<32-1)))
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
func (l *mqttLoop) fail(i int, err error) {
	l.r.errs++
	if l.r.firstErr == "" {
		l.r.firstErr = err.Error()
	}
	l.finish(i)
	l.finishWhenAcked()
}

// finishWhenAcked disconnects every device once each open one has had
// its last PUBACK (l.acked of them) and nothing more is scheduled.
func (l *mqttLoop) finishWhenAcked() {
	if l.unscheduled && l.lastAcked >= l.open {
		for i := range l.devs {
			if l.devs[i].state != devClosed {
				l.finish(i)
			}
		}
	}
}

// finish sends DISCONNECT (if the socket takes it) and closes device i.
func (l *mqttLoop) finish(i int) {
	d := &l.devs[i]
	_, _ = syscall.Write(d.fd, []byte{0xE0, 0})
	syscall.Close(d.fd) // also leaves the epoll set
	d.state, d.out = devClosed, nil
	l.open--
}

// appendPublish appends the QoS 1 PUBLISH of reading k that mqttClient.send
// writes: mqttPacket(0x32, topic, packet id, payload(d, k, at)).
func appendPublish(b []byte, topic string, pid uint16, d device, k int, at time.Time) []byte {
	var pl [96]byte
	p := append(pl[:0], `{"sensor_id":`...)
	p = strconv.AppendInt(p, d.sensor, 10)
	p = append(p, `,"timestamp":`...)
	p = strconv.AppendInt(p, at.UnixMilli(), 10)
	p = append(p, `,"value":`...)
	p = strconv.AppendInt(p, int64(k), 10)
	p = append(p, `.5}`...)
	b = appendLength(append(b, 0x32), 2+len(topic)+2+len(p))
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	b = binary.BigEndian.AppendUint16(b, pid)
	return append(b, p...)
}
