package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// wsDevice is one connection of TestWSLoop_Gateway: a fixture device and a
// sensor (one of another type than the readings' doubles is refused).
type wsDevice struct {
	id, sensor int64
	refused    bool
}

// TestWSLoop_Gateway drives WebSocket devices through the real gateway
// (epoll edge, the real ingest service, a recording sink) from the epoll
// loop and from goroutines: the upgrade, every reading framed, acked in
// order and stored, a refused one counted as refused, and the gateway's
// pings (every 10 ms; a connection without pong is ended after 100 ms)
// answered.
func TestWSLoop_Gateway(t *testing.T) {
	devices := []wsDevice{
		{id: ingesttest.DeviceA, sensor: ingesttest.SensorDouble},
		{id: ingesttest.DeviceB, sensor: ingesttest.SensorOfB},
		{}, // did not connect
		{id: ingesttest.DeviceA, sensor: ingesttest.SensorLong, refused: true},
		{id: ingesttest.DeviceA, sensor: ingesttest.SensorDouble},
	}
	for _, epoll := range []bool{true, false} {
		t.Run(map[bool]string{true: "epoll", false: "goroutines"}[epoll], func(t *testing.T) {
			e := ingesttest.New(t, ingesttest.Options{})
			g := gwws.New(e.Log, e.Verifier, e.Service, gwws.Config{PingInterval: 10 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
			srv := httptest.NewServer(g)
			defer func() {
				srv.Close()
				_ = g.Close()
			}()
			addr := strings.TrimPrefix(srv.URL, "http://")
			clients := make([]client, len(devices))
			for i, d := range devices {
				if d.id == 0 {
					continue
				}
				c, err := dialWS(addr, device{id: d.id, sensor: d.sensor, key: e.DeviceToken(t, d.id)})
				if err != nil {
					t.Fatal(err)
				}
				clients[i] = c
			}
			var loop deviceLoop = goroutineLoop(clients)
			var wl *wsLoop
			if epoll {
				l, err := newWSLoop(clients)
				if err != nil {
					t.Fatal(err)
				}
				wl = l.(*wsLoop)
				loop = wl
			}
			s := schedule{interval: 20 * time.Millisecond, ackTimeout: time.Second}
			s.t0 = time.Now().Add(20 * time.Millisecond)
			s.wStart = s.t0.Add(60 * time.Millisecond)
			s.end = s.wStart.Add(300 * time.Millisecond)
			r, lats := loop.run(s)

			var want result
			stored := map[int64]int{}
			for i, d := range devices {
				if d.id == 0 {
					continue
				}
				all, window := scheduled(s, i, len(devices))
				want.sent += int64(all)
				if d.refused {
					want.refused += int64(all)
					continue
				}
				want.acked += int64(all)
				want.windowAcked += int64(window)
				stored[d.sensor] += all
			}
			if r.sent != want.sent || r.acked != want.acked || r.refused != want.refused || r.windowAcked != want.windowAcked ||
				int64(len(lats)) != want.windowAcked || r.errs != 0 || r.firstErr != "" {
				t.Errorf("got %+v (%d latencies), want sent %d, acked %d, refused %d, window %d, no errors",
					r, len(lats), want.sent, want.acked, want.refused, want.windowAcked)
			}
			got := map[int64]int{}
			var values []float64 // device B's, in order
			for _, rec := range e.Sink.Records() {
				got[rec.SensorId]++
				if rec.SensorId == ingesttest.SensorOfB {
					values = append(values, rec.GetDoubleValue())
				}
			}
			if len(got) != len(stored) || got[ingesttest.SensorDouble] != stored[ingesttest.SensorDouble] || got[ingesttest.SensorOfB] != stored[ingesttest.SensorOfB] {
				t.Errorf("stored per sensor %v, want %v", got, stored)
			}
			for k, v := range values {
				if v != float64(k)+0.5 {
					t.Errorf("device B's reading %d stored as %v", k, v)
					break
				}
			}
			if wl != nil && wl.pongs == 0 {
				t.Error("no ping answered")
			}
		})
	}
}

// wsServer is a tiny WebSocket server for the loop's edge cases: it
// upgrades (the bearer token "k<id>" names the device), checks every
// frame (masked, the reading's JSON) and answers each reading as the
// device's mode says: "ok" (its ack), "split" (a ping, then the ack in
// three writes), "hello" ("ok", with a ping in the upgrade response's
// write), "wrongindex" (an ack for the next message), "silent" (none) or
// "close2" (two acks, then a close frame). Every ping's pong must carry
// its payload.
type wsServer struct {
	*tcpServer
	t     *testing.T
	modes map[int64]string

	mu   sync.Mutex
	seen map[int64]*wsLog
}

type wsLog struct {
	ks               []int // readings received, in order
	pings, pongs     int   // sent; answered with the same payload
	closed           bool  // close frame received
	problems         []string
	lastAck, closeAt time.Time
}

func newWSServer(t *testing.T, modes map[int64]string) *wsServer {
	s := &wsServer{t: t, modes: modes, seen: map[int64]*wsLog{}}
	s.tcpServer = startTCP(t, s.serve)
	return s
}

// wait waits for every connection to end.
func (s *wsServer) wait() map[int64]*wsLog {
	s.close()
	return s.seen
}

// readClientFrame reads one masked frame and unmasks it.
func readClientFrame(r *bufio.Reader) (op byte, p []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	if h[0]&0x80 == 0 || h[1]&0x80 == 0 {
		return 0, nil, fmt.Errorf("frame header %x: not final or not masked", h)
	}
	n := int(h[1] & 0x7f)
	if n == 126 {
		var e [2]byte
		if _, err := io.ReadFull(r, e[:]); err != nil {
			return 0, nil, err
		}
		n = int(binary.BigEndian.Uint16(e[:]))
	}
	var mask [4]byte
	if _, err := io.ReadFull(r, mask[:]); err != nil {
		return 0, nil, err
	}
	p = make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return 0, nil, err
	}
	for i := range p {
		p[i] ^= mask[i&3]
	}
	return h[0] & 0x0f, p, nil
}

func serverFrameBytes(op byte, p string) []byte { return append([]byte{0x80 | op, byte(len(p))}, p...) }

func (s *wsServer) serve(c net.Conn) {
	r := bufio.NewReader(c)
	req, err := http.ReadRequest(r)
	if err != nil {
		s.t.Errorf("upgrade: %v", err)
		return
	}
	id, _ := strconv.ParseInt(strings.TrimPrefix(req.Header.Get("Authorization"), "Bearer k"), 10, 64)
	key, _ := base64.StdEncoding.DecodeString(req.Header.Get("Sec-WebSocket-Key"))
	mode := s.modes[id]
	log := &wsLog{}
	s.mu.Lock()
	s.seen[id] = log
	s.mu.Unlock()
	problem := func(f string, a ...any) {
		s.mu.Lock()
		log.problems = append(log.problems, fmt.Sprintf(f, a...))
		s.mu.Unlock()
	}
	var pings []string // payloads not answered yet, in order
	ping := func() []byte {
		p := fmt.Sprintf("p%d", log.pings)
		s.mu.Lock()
		log.pings++
		s.mu.Unlock()
		pings = append(pings, p)
		return serverFrameBytes(0x9, p)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " + wsAccept(key) + "\r\n\r\n"
	hello := []byte(resp)
	if mode == "hello" {
		hello = append(hello, ping()...)
		mode = "ok"
	}
	if _, err := c.Write(hello); err != nil {
		return
	}
	n := 0
	unanswered := false
	for {
		op, p, err := readClientFrame(r)
		if err != nil {
			if err != io.EOF {
				problem("read: %v", err)
			}
			return
		}
		switch op {
		case 0xA:
			if len(pings) == 0 || string(p) != pings[0] {
				problem("pong %q, pings unanswered %q", p, pings)
				continue
			}
			pings = pings[1:]
			s.mu.Lock()
			log.pongs++
			s.mu.Unlock()
			continue
		case 0x8:
			s.mu.Lock()
			log.closed, log.closeAt = true, time.Now()
			s.mu.Unlock()
			if string(p) != "\x03\xe8" {
				problem("close frame %q", p)
			}
			continue
		case 0x1:
		default:
			problem("opcode %d", op)
			continue
		}
		if unanswered {
			problem("a second reading before the first's ack")
		}
		var sensor, ts int64
		var k int
		if _, err := fmt.Sscanf(string(p), `{"sensor_id":%d,"timestamp":%d,"value":%d.5}`, &sensor, &ts, &k); err != nil || sensor != 10*id {
			problem("reading %q (%v) from device %d", p, err, id)
		}
		s.mu.Lock()
		log.ks = append(log.ks, k)
		log.lastAck = time.Now() // before the write: the device reads it after
		s.mu.Unlock()
		ack := serverFrameBytes(0x1, fmt.Sprintf(`{"index":%d,"status":200,"accepted":1}`, n))
		n++
		switch mode {
		case "ok":
			_, err = c.Write(ack)
		case "split":
			b := append(ping(), ack...)
			for _, part := range [][]byte{b[:3], b[3 : len(b)-5], b[len(b)-5:]} {
				if _, err = c.Write(part); err != nil {
					break
				}
				time.Sleep(2 * time.Millisecond)
			}
		case "wrongindex":
			_, err = c.Write(serverFrameBytes(0x1, fmt.Sprintf(`{"index":%d,"status":200,"accepted":1}`, n)))
		case "silent":
			unanswered = true
		case "close2":
			_, err = c.Write(ack)
			if n == 2 {
				_, _ = c.Write(serverFrameBytes(0x8, "\x03\xe9going away"))
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// wsRun connects one device per mode ("": did not connect; device i has
// id i+1, sensor 10·id and key "k<id>") to a wsServer and drives them
// through s, starting now, on the epoll loop.
func wsRun(t *testing.T, modes []string, s schedule) (result, []uint32, map[int64]*wsLog, schedule) {
	t.Helper()
	byID := map[int64]string{}
	for i, m := range modes {
		byID[int64(i+1)] = m
	}
	srv := newWSServer(t, byID)
	clients := make([]client, len(modes))
	for i, m := range modes {
		if m == "" {
			continue
		}
		id := int64(i + 1)
		c, err := dialWS(srv.ln.Addr().String(), device{id: id, sensor: 10 * id, key: "k" + strconv.FormatInt(id, 10)})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	l, err := newWSLoop(clients)
	if err != nil {
		t.Fatal(err)
	}
	s.t0 = time.Now().Add(20 * time.Millisecond)
	s.wStart = s.t0.Add(60 * time.Millisecond)
	s.end = s.wStart.Add(100 * time.Millisecond)
	r, lats := l.run(s)
	return r, lats, srv.wait(), s
}

func TestWSLoop(t *testing.T) {
	base := schedule{interval: 20 * time.Millisecond, ackTimeout: 100 * time.Millisecond}
	check := func(t *testing.T, seen map[int64]*wsLog, id int64, n int) {
		t.Helper()
		l := seen[id]
		if l == nil {
			t.Fatalf("device %d never connected", id)
		}
		var ks []int
		for k := range n {
			ks = append(ks, k)
		}
		if fmt.Sprint(l.ks) != fmt.Sprint(ks) || !l.closed || l.pongs != l.pings || len(l.problems) > 0 {
			t.Errorf("device %d: readings %v (want %v), close frame %v, %d of %d pings answered, problems %q",
				id, l.ks, ks, l.closed, l.pongs, l.pings, l.problems)
		}
	}

	t.Run("acks", func(t *testing.T) {
		modes := []string{"ok", "split", "", "hello", "ok"}
		r, lats, seen, s := wsRun(t, modes, base)
		var want result
		for i, m := range modes {
			if m == "" {
				continue
			}
			all, window := scheduled(s, i, len(modes))
			want.sent += int64(all)
			want.windowAcked += int64(window)
			check(t, seen, int64(i+1), all)
		}
		if seen[2].pings < 2 || seen[4].pings != 1 {
			t.Errorf("%d and %d pings sent, want every reading's and one", seen[2].pings, seen[4].pings)
		}
		if r.sent != want.sent || r.acked != want.sent || r.windowAcked != want.windowAcked || int64(len(lats)) != want.windowAcked ||
			r.errs != 0 || r.refused != 0 || r.firstErr != "" {
			t.Errorf("got %+v (%d latencies), want sent = acked = %d, window %d, no errors", r, len(lats), want.sent, want.windowAcked)
		}
		// No device closes while another still waits for an ack.
		var acks, ends []time.Time
		for _, l := range seen {
			acks, ends = append(acks, l.lastAck), append(ends, l.closeAt)
		}
		wantEndsAfterAcks(t, acks, ends)
	})

	t.Run("missing ack", func(t *testing.T) {
		r, _, seen, s := wsRun(t, []string{"ok", "silent"}, base)
		all, _ := scheduled(s, 0, 2)
		check(t, seen, 1, all)
		check(t, seen, 2, 1) // one reading, no second one, then the close frame
		if r.sent != int64(all)+1 || r.acked != int64(all) || r.errs != 1 || !strings.Contains(r.firstErr, "i/o timeout") {
			t.Errorf("got %+v, want %d sent, %d acked, one timeout", r, all+1, all)
		}
	})

	t.Run("wrong index", func(t *testing.T) {
		r, _, seen, _ := wsRun(t, []string{"wrongindex"}, base)
		check(t, seen, 1, 1)
		if r.sent != 1 || r.acked != 0 || r.errs != 1 || r.firstErr != `ack "{\"index\":1,\"status\":200,\"accepted\":1}" for message 0` {
			t.Errorf("got %+v", r)
		}
	})

	t.Run("closed by the server", func(t *testing.T) {
		r, _, seen, _ := wsRun(t, []string{"close2"}, base)
		if l := seen[1]; fmt.Sprint(l.ks) != "[0 1]" || len(l.problems) > 0 {
			t.Errorf("server saw %v, problems %q", l.ks, l.problems)
		}
		if r.acked != 2 || r.errs != 1 || r.firstErr != `closed by server: "\x03\xe9going away"` {
			t.Errorf("got %+v, want 2 acked, closed by the server", r)
		}
	})
}

func TestServerFrame(t *testing.T) {
	ack := serverFrameBytes(0x1, `{"index":41,"status":200}`)
	long := append([]byte{0x81, 126, 0, 200}, bytes.Repeat([]byte("x"), 200)...)
	for _, c := range []struct {
		b    []byte
		n    int
		op   byte
		p    string
		fail bool
	}{
		{b: ack, n: len(ack), op: 1, p: `{"index":41,"status":200}`},
		{b: append(ack, 0x89), n: len(ack), op: 1, p: `{"index":41,"status":200}`},
		{b: ack[:len(ack)-1]},
		{b: ack[:1]},
		{b: long, n: 204, op: 1, p: strings.Repeat("x", 200)},
		{b: long[:3]},
		{b: long[:203]},
		{b: []byte{0x01, 0}, fail: true},    // not final
		{b: []byte{0x81, 0x85}, fail: true}, // masked
		{b: []byte{0xC1, 0}, fail: true},    // RSV1
		{b: []byte{0x81, 127, 0, 0, 0, 0, 0, 0, 0, 1}, fail: true},
		{b: []byte{0x81, 126, 0xff, 0xff}, fail: true},
	} {
		n, op, p, err := serverFrame(c.b)
		if n != c.n || op != c.op || string(p) != c.p || (err != nil) != c.fail {
			t.Errorf("serverFrame(%q) = %d, %d, %q, %v", c.b, n, op, p, err)
		}
	}
	for p, want := range map[string]int{`{"index":41,"status":200}`: 41, `{"index":0,"status":200}`: 0, `{"status":200}`: -1, `{"index":x,`: -1, `{"index":7}`: -1} {
		if got := ackIndex([]byte(p)); got != want {
			t.Errorf("ackIndex(%s) = %d, want %d", p, got, want)
		}
	}
}
