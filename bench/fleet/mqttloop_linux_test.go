package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// broker is a tiny MQTT 3.1.1 server for the generator's device loops: it
// answers CONNECT, checks every PUBLISH (topic, packet id, payload) and
// answers it as the device's mode says: "ok" (PUBACK), "split" (a PUBACK
// in two writes, the second once the loop has read the first),
// "silent" (none), "wrongpid" (a PUBACK for another packet) or "close2"
// (two PUBACKs, then the connection closed).
type broker struct {
	*tcpServer
	t       *testing.T
	modes   map[int64]string
	partial chan struct{} // the loop read half a PUBACK (nil: goroutineLoop)

	mu   sync.Mutex
	seen map[int64]*deviceLog
}

type deviceLog struct {
	ks           []int // readings received, in order
	disconnected bool  // DISCONNECT received
	problems     []string
	// lastAck: when the last PUBACK was about to be written; disconnectAt: when
	// DISCONNECT came.
	lastAck, disconnectAt time.Time
}

func newBroker(t *testing.T, modes map[int64]string, partial chan struct{}) *broker {
	b := &broker{t: t, modes: modes, partial: partial, seen: map[int64]*deviceLog{}}
	b.tcpServer = startTCP(t, b.serve)
	return b
}

// wait waits for every connection to end.
func (b *broker) wait() map[int64]*deviceLog {
	b.close()
	return b.seen
}

// tcpServer serves each connection it accepts on a goroutine of its own.
type tcpServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startTCP(t *testing.T, serve func(net.Conn)) *tcpServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	return s
}

// close closes the listener and waits for every connection to end.
func (s *tcpServer) close() {
	s.ln.Close()
	s.wg.Wait()
}

func readPacket(r *bufio.Reader) (byte, []byte, error) {
	typ, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		c, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(c&0x7f) * mul
		mul *= 128
		if c&0x80 == 0 {
			break
		}
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return typ, body, err
}

func mqttStr(b []byte) (string, []byte) {
	n := int(binary.BigEndian.Uint16(b))
	return string(b[2 : 2+n]), b[2+n:]
}

func (b *broker) serve(c net.Conn) {
	r := bufio.NewReader(c)
	typ, body, err := readPacket(r)
	if err != nil || typ != 0x10 {
		b.t.Errorf("connect: %x %v", typ, err)
		return
	}
	_, rest := mqttStr(body)         // "MQTT"
	clientID, _ := mqttStr(rest[4:]) // level, flags, keep-alive
	id, _ := strconv.ParseInt(strings.TrimPrefix(clientID, "fleet-"), 10, 64)
	if _, err := c.Write([]byte{0x20, 2, 0, 0}); err != nil {
		return
	}
	log := &deviceLog{}
	b.mu.Lock()
	b.seen[id] = log
	b.mu.Unlock()
	problem := func(f string, a ...any) {
		b.mu.Lock()
		log.problems = append(log.problems, fmt.Sprintf(f, a...))
		b.mu.Unlock()
	}
	mode := b.modes[id]
	unanswered := false
	for {
		typ, body, err := readPacket(r)
		if err != nil {
			return // the device closed its connection
		}
		switch typ {
		case 0xE0:
			b.mu.Lock()
			log.disconnected, log.disconnectAt = true, time.Now()
			b.mu.Unlock()
			continue
		case 0x32:
		default:
			problem("packet type %x", typ)
			continue
		}
		if unanswered {
			problem("a second PUBLISH before the first's PUBACK")
		}
		topic, rest := mqttStr(body)
		pid := binary.BigEndian.Uint16(rest)
		var sensor, ts int64
		var k int
		if _, err := fmt.Sscanf(string(rest[2:]), `{"sensor_id":%d,"timestamp":%d,"value":%d.5}`, &sensor, &ts, &k); err != nil {
			problem("payload %q: %v", rest[2:], err)
		}
		if want := payload(device{sensor: sensor}, k, time.UnixMilli(ts)); !bytes.Equal(rest[2:], want) {
			problem("payload %q, want %q", rest[2:], want)
		}
		if topic != strconv.FormatInt(id, 10) || sensor != 10*id || pid != uint16(k%65535+1) {
			problem("topic %q sensor %d packet %d for reading %d", topic, sensor, pid, k)
		}
		b.mu.Lock()
		log.ks = append(log.ks, k)
		acked := len(log.ks)
		b.mu.Unlock()
		ack := []byte{0x40, 2, byte(pid >> 8), byte(pid)}
		b.mu.Lock()
		log.lastAck = time.Now() // before the write: the device reads it after
		b.mu.Unlock()
		switch mode {
		case "ok":
			_, err = c.Write(ack)
		case "split":
			if _, err = c.Write(ack[:2]); err != nil {
				break
			}
			if b.partial != nil {
				select {
				case <-b.partial:
				case <-time.After(10 * time.Second): // a guard, not a measurement
					problem("the loop never read half a PUBACK")
				}
			} else {
				time.Sleep(2 * time.Millisecond)
			}
			_, err = c.Write(ack[2:])
		case "silent":
			unanswered = true
		case "wrongpid":
			binary.BigEndian.PutUint16(ack[2:], pid+1)
			_, err = c.Write(ack)
		case "close2":
			_, err = c.Write(ack)
			if acked == 2 {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// run is one fleetRun: the loop's counts and latencies, what the broker
// saw per device id, how many PUBACKs the loop read in two parts, and the
// schedule.
type run struct {
	r        result
	lats     []uint32
	seen     map[int64]*deviceLog
	partials int
	s        schedule
}

// fleetRun connects one device per mode ("": a device that did not
// connect; device i has id i+1 and sensor 10·id) to a broker and drives
// them through s, starting now, with the epoll loop (or goroutineLoop).
func fleetRun(t *testing.T, modes []string, s schedule, epoll bool) run {
	t.Helper()
	byID := map[int64]string{}
	for i, m := range modes {
		byID[int64(i+1)] = m
	}
	var partial chan struct{}
	if epoll {
		partial = make(chan struct{}, 1)
	}
	b := newBroker(t, byID, partial)
	clients := make([]client, len(modes))
	for i, m := range modes {
		if m == "" {
			continue
		}
		c, err := dialMQTT(b.ln.Addr().String(), device{id: int64(i + 1), sensor: 10 * int64(i+1), key: "k"})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	var loop deviceLoop = goroutineLoop(clients)
	partials := 0
	if epoll {
		l, err := newMQTTLoop(clients)
		if err != nil {
			t.Fatal(err)
		}
		ml := l.(*mqttLoop)
		ml.onPartial = func(int) {
			partials++
			partial <- struct{}{}
		}
		loop = ml
	}
	s.t0 = time.Now().Add(20 * time.Millisecond)
	s.wStart = s.t0.Add(60 * time.Millisecond)
	s.end = s.wStart.Add(100 * time.Millisecond)
	r, lats := loop.run(s)
	return run{r, lats, b.wait(), partials, s}
}

// wantEndsAfterAcks checks that no device ended (ends: when the server saw
// its goodbye) before the last ack was written (acks: when each device's
// last was about to be).
func wantEndsAfterAcks(t *testing.T, acks, ends []time.Time) {
	t.Helper()
	lastAck, firstEnd := slices.MaxFunc(acks, time.Time.Compare), slices.MinFunc(ends, time.Time.Compare)
	if firstEnd.Before(lastAck) {
		t.Errorf("a device ended %v before the last ack was written", lastAck.Sub(firstEnd))
	}
}

// scheduled counts device i of n's readings: all, and the window's.
func scheduled(s schedule, i, n int) (all, window int) {
	for k := 0; s.at(i, n, k).Before(s.end); k++ {
		all++
		if !s.at(i, n, k).Before(s.wStart) {
			window++
		}
	}
	return all, window
}

func TestMQTTLoop(t *testing.T) {
	base := schedule{interval: 20 * time.Millisecond, ackTimeout: 100 * time.Millisecond}
	seq := func(n int) []int {
		ks := make([]int, n)
		for k := range ks {
			ks[k] = k
		}
		return ks
	}
	check := func(t *testing.T, seen map[int64]*deviceLog, id int64, ks []int) {
		t.Helper()
		l := seen[id]
		if l == nil {
			t.Fatalf("device %d never connected", id)
		}
		if fmt.Sprint(l.ks) != fmt.Sprint(ks) || !l.disconnected || len(l.problems) > 0 {
			t.Errorf("device %d: readings %v (want %v), DISCONNECT %v, problems %q", id, l.ks, ks, l.disconnected, l.problems)
		}
	}

	for _, epoll := range []bool{true, false} {
		name := map[bool]string{true: "epoll", false: "goroutines"}[epoll]
		t.Run(name+"/acks", func(t *testing.T) {
			modes := []string{"ok", "split", "", "ok", "ok"}
			x := fleetRun(t, modes, base, epoll)
			r, lats := x.r, x.lats
			var want result
			for i, m := range modes {
				if m == "" {
					continue
				}
				all, window := scheduled(x.s, i, len(modes))
				want.sent += int64(all)
				want.windowAcked += int64(window)
				check(t, x.seen, int64(i+1), seq(all))
				if m == "split" && epoll && x.partials != all {
					t.Errorf("%d PUBACKs read in two parts, want %d", x.partials, all)
				}
			}
			if r.sent != want.sent || r.acked != want.sent || r.windowAcked != want.windowAcked || int64(len(lats)) != want.windowAcked ||
				r.errs != 0 || r.refused != 0 || r.firstErr != "" {
				t.Errorf("got %+v (%d latencies), want sent = acked = %d, window %d, no errors", r, len(lats), want.sent, want.windowAcked)
			}
			if epoll {
				// No device disconnects while another still waits for a
				// PUBACK: the measured acks never overlap a disconnect storm.
				var acks, ends []time.Time
				for _, l := range x.seen {
					acks, ends = append(acks, l.lastAck), append(ends, l.disconnectAt)
				}
				wantEndsAfterAcks(t, acks, ends)
			}
		})
	}

	t.Run("missing PUBACK", func(t *testing.T) {
		x := fleetRun(t, []string{"ok", "silent"}, base, true)
		r := x.r
		all, _ := scheduled(x.s, 0, 2)
		check(t, x.seen, 1, seq(all))
		check(t, x.seen, 2, []int{0}) // one PUBLISH, no second one, then DISCONNECT
		if r.sent != int64(all)+1 || r.acked != int64(all) || r.errs != 1 || !strings.Contains(r.firstErr, "i/o timeout") {
			t.Errorf("got %+v, want %d sent, %d acked, one timeout", r, all+1, all)
		}
	})

	t.Run("wrong packet id", func(t *testing.T) {
		x := fleetRun(t, []string{"wrongpid"}, base, true)
		r := x.r
		check(t, x.seen, 1, []int{0})
		if r.sent != 1 || r.acked != 0 || r.errs != 1 || r.firstErr != "puback 40020002 for packet 1" {
			t.Errorf("got %+v", r)
		}
	})

	t.Run("closed by the server", func(t *testing.T) {
		x := fleetRun(t, []string{"close2"}, base, true)
		r := x.r
		if l := x.seen[1]; fmt.Sprint(l.ks) != "[0 1]" || len(l.problems) > 0 {
			t.Errorf("server saw %v, problems %q", l.ks, l.problems)
		}
		if r.sent != 3 || r.acked != 2 || r.errs != 1 || r.firstErr == "" {
			t.Errorf("got %+v, want 3 sent, 2 acked, one error", r)
		}
	})
}

func TestAppendPublish(t *testing.T) {
	at := time.UnixMilli(1764680000123)
	for _, topic := range []string{"7", strings.Repeat("9", 200)} {
		d := device{id: 7, sensor: 123456789}
		for _, k := range []int{0, 41, 65534, 65535, 1 << 20} {
			if got, want := string(payload(d, k, at)), fmt.Sprintf(`{"sensor_id":123456789,"timestamp":1764680000123,"value":%d.5}`, k); got != want {
				t.Errorf("payload %s, want %s", got, want)
			}
			pid := uint16(k%65535 + 1)
			body := mqttString(nil, topic)
			body = binary.BigEndian.AppendUint16(body, pid)
			body = append(body, payload(d, k, at)...)
			if got, want := appendPublish(nil, topic, pid, d, k, at), mqttPacket(0x32, body); !bytes.Equal(got, want) {
				t.Errorf("topic %d bytes, reading %d:\n got %q\nwant %q", len(topic), k, got, want)
			}
		}
	}
}
