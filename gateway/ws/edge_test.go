package ws

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// startEdge serves a gateway over plain HTTP (epoll-read unless cfg says
// otherwise) and returns it with its ws:// URL.
func startEdge(t *testing.T, cfg Config) (*ingesttest.Env, *Gateway, string) {
	t.Helper()
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 2 * time.Second})
	g := New(e.Log, e.Verifier, e.Service, cfg)
	srv := httptest.NewServer(g)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return e, g, "ws" + strings.TrimPrefix(srv.URL, "http")
}

// startEdgeTLS serves a gateway over TLS, its connections accepted through
// Listener unless noListener (then coder/websocket reads them), and
// returns it with its wss:// URL.
func startEdgeTLS(t *testing.T, cfg Config, noListener bool) (*ingesttest.Env, *Gateway, string) {
	t.Helper()
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 2 * time.Second})
	g := New(e.Log, e.Verifier, e.Service, cfg)
	srv := httptest.NewUnstartedServer(g)
	if !noListener {
		srv.Listener = g.Listener(srv.Listener)
	}
	srv.StartTLS()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	host := strings.TrimPrefix(srv.URL, "https://")
	tlsRoots.Store(host, roots)
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
		tlsRoots.Delete(host)
	})
	return e, g, "wss://" + host
}

// tlsRoots holds the certificate pool of each TLS test server, by host.
var tlsRoots sync.Map

// transports are the connections read through epoll: plain TCP, and TLS
// accepted through Listener (dialRaw speaks either, by the URL's scheme).
var transports = []struct {
	name  string
	start func(*testing.T, Config) (*ingesttest.Env, *Gateway, string)
}{
	{"plain", startEdge},
	{"TLS", func(t *testing.T, cfg Config) (*ingesttest.Env, *Gateway, string) { return startEdgeTLS(t, cfg, false) }},
}

// splitConn writes every write in two parts a moment apart: each TLS
// record reaches the gateway in pieces.
type splitConn struct{ net.Conn }

func (c splitConn) Write(b []byte) (int, error) {
	if len(b) < 2 {
		return c.Conn.Write(b)
	}
	n, err := c.Conn.Write(b[:len(b)/2])
	if err != nil {
		return n, err
	}
	time.Sleep(time.Millisecond)
	m, err := c.Conn.Write(b[len(b)/2:])
	return n + m, err
}

// rawClient speaks WebSocket frame by frame over TCP, to send what
// libraries do not (unmasked frames, fragments with pings between them,
// bytes split anywhere).
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

// dialRaw upgrades with the device token; extra[0] is written right after
// the request, in the same write, the others each in a write of its own
// before the response is read. A wss:// URL is dialed with TLS, each write
// split in two (splitConn).
func dialRaw(t *testing.T, url, token string, extra ...[]byte) *rawClient {
	t.Helper()
	return dialRawSplit(t, url, token, true, extra...)
}

// dialRawSplit is dialRaw, with TLS writes whole unless split.
func dialRawSplit(t *testing.T, url, token string, split bool, extra ...[]byte) *rawClient {
	t.Helper()
	host, secure := strings.CutPrefix(url, "wss://")
	host = strings.TrimPrefix(host, "ws://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	if secure {
		roots, ok := tlsRoots.Load(host)
		if !ok {
			t.Fatalf("no certificate for %s", host)
		}
		under := conn
		if split {
			under = splitConn{conn}
		}
		conn = tls.Client(under, &tls.Config{RootCAs: roots.(*x509.CertPool), ServerName: "127.0.0.1"})
	}
	t.Cleanup(func() { conn.Close() })
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	k := base64.StdEncoding.EncodeToString(key)
	req := "GET / HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + k +
		"\r\nAuthorization: Bearer " + token + "\r\n\r\n"
	first := []byte(req)
	if len(extra) > 0 {
		first, extra = append(first, extra[0]...), extra[1:]
	}
	for _, b := range append([][]byte{first}, extra...) {
		if _, err := conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Accept") != acceptKey(k) {
		t.Fatalf("upgrade: %d, accept %q, want 101 and %q", resp.StatusCode, resp.Header.Get("Sec-WebSocket-Accept"), acceptKey(k))
	}
	return &rawClient{t: t, conn: conn, br: br}
}

// clientFrame is a masked client frame (unmasked when mask is false).
func clientFrame(op byte, fin, mask bool, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	m := byte(0)
	if mask {
		m = 0x80
	}
	switch n := len(payload); {
	case n <= 125:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if !mask {
		return append(b, payload...)
	}
	key := []byte{0x12, 0x34, 0x56, 0x78}
	b = append(b, key...)
	for i, x := range payload {
		b = append(b, x^key[i&3])
	}
	return b
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(b); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next server frame (servers do not mask or fragment).
func (c *rawClient) read() (op byte, payload []byte, err error) {
	var h [2]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var l [2]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(l[:]))
	case 127:
		var l [8]byte
		if _, err := io.ReadFull(c.br, l[:]); err != nil {
			return 0, nil, err
		}
		n = binary.BigEndian.Uint64(l[:])
	}
	payload = make([]byte, n)
	_, err = io.ReadFull(c.br, payload)
	return h[0] & 0x0f, payload, err
}

// ack reads frames until a text frame and decodes it as an ack.
func (c *rawClient) ack() Ack {
	c.t.Helper()
	for {
		op, p, err := c.read()
		if err != nil {
			c.t.Fatalf("reading an ack: %v", err)
		}
		if op == opPing {
			continue
		}
		if op != opText {
			c.t.Fatalf("frame %d (%q), want an ack", op, p)
		}
		var a Ack
		if err := json.Unmarshal(p, &a); err != nil {
			c.t.Fatal(err)
		}
		return a
	}
}

// closeCode reads frames until a close frame and returns its code.
func (c *rawClient) closeCode() websocket.StatusCode {
	c.t.Helper()
	for {
		op, p, err := c.read()
		if err != nil {
			c.t.Fatalf("connection ended without a close frame: %v", err)
		}
		if op == opClose {
			if len(p) < 2 {
				return websocket.StatusNoStatusRcvd
			}
			return websocket.StatusCode(binary.BigEndian.Uint16(p))
		}
	}
}

func reading(v int) []byte {
	return []byte(fmt.Sprintf(`{"sensor_id":%d,"value":%d}`, ingesttest.SensorLong, v))
}

// TestEdge_IdleConnectionsHoldNoGoroutine: 200 connections that have sent
// a message and read its ack hold no goroutine each when read through
// epoll, TLS ones accepted through Listener too; coder/websocket's loop
// (TLS without Listener) holds at least one each (the comparison is not
// void).
func TestEdge_IdleConnectionsHoldNoGoroutine(t *testing.T) {
	const n = 200
	tlsEdge := func(noListener bool) func(*testing.T, Config) (*ingesttest.Env, *Gateway, string) {
		return func(t *testing.T, cfg Config) (*ingesttest.Env, *Gateway, string) {
			return startEdgeTLS(t, cfg, noListener)
		}
	}
	for _, tc := range []struct {
		name    string
		start   func(*testing.T, Config) (*ingesttest.Env, *Gateway, string)
		cfg     Config
		atMost  int
		atLeast int
	}{
		{"epoll", startEdge, Config{}, n / 10, 0},
		{"coder/websocket", startEdge, Config{GoroutinePerConnection: true}, 1 << 30, n},
		{"epoll over TLS", tlsEdge(false), Config{}, n / 10, 0},
		{"coder/websocket over TLS (no Listener)", tlsEdge(true), Config{}, 1 << 30, n},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, url := tc.start(t, tc.cfg)
			tok := e.DeviceToken(t, ingesttest.DeviceA)
			time.Sleep(readerIdle + 300*time.Millisecond) // the readers of an earlier test end
			base := runtime.NumGoroutine()
			conns := make([]*rawClient, n)
			for i := range conns {
				conns[i] = dialRaw(t, url, tok)
				conns[i].write(clientFrame(opText, true, true, reading(i)))
			}
			for _, c := range conns {
				if a := c.ack(); a.Status != http.StatusOK {
					t.Fatalf("ack %+v", a)
				}
			}
			time.Sleep(readerIdle + 300*time.Millisecond) // idle readers end
			got := runtime.NumGoroutine() - base
			t.Logf("%d goroutines more with %d connections open and idle", got, n)
			if got > tc.atMost || got < tc.atLeast {
				t.Fatalf("%d goroutines for %d idle connections, want between %d and %d", got, n, tc.atLeast, tc.atMost)
			}
		})
	}
}

// TestEdge_Frames: what device libraries send reaches the ingest path
// whole and in order: a message in three fragments with a ping between
// them (answered at once), messages pipelined in one write, a message
// split byte by byte, and bytes sent together with the upgrade request.
func TestEdge_Frames(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testFrames(t, tr.start) })
	}
}

func testFrames(t *testing.T, serveEdge func(*testing.T, Config) (*ingesttest.Env, *Gateway, string)) {
	e, _, url := serveEdge(t, Config{})
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	c := dialRaw(t, url, tok, clientFrame(opText, true, true, reading(0)))
	if a := c.ack(); a.Index != 0 || a.Status != http.StatusOK || a.Accepted != 1 {
		t.Fatalf("early message: ack %+v", a)
	}

	msg := reading(1)
	c.write(clientFrame(opText, false, true, msg[:5]))
	c.write(clientFrame(opPing, true, true, []byte("are you there")))
	if op, p, err := c.read(); err != nil || op != opPong || string(p) != "are you there" {
		t.Fatalf("ping between fragments: frame %d %q %v, want its pong", op, p, err)
	}
	c.write(clientFrame(opContinuation, false, true, msg[5:10]))
	c.write(clientFrame(opContinuation, true, true, msg[10:]))
	if a := c.ack(); a.Index != 1 || a.Status != http.StatusOK || a.Accepted != 1 {
		t.Fatalf("fragmented message: ack %+v", a)
	}

	var pipelined []byte
	for v := 2; v < 52; v++ {
		pipelined = append(pipelined, clientFrame(opText, true, true, reading(v))...)
	}
	c.write(pipelined)
	for i := 2; i < 52; i++ {
		if a := c.ack(); a.Index != i || a.Status != http.StatusOK {
			t.Fatalf("pipelined message %d: ack %+v", i, a)
		}
	}

	for _, b := range clientFrame(opText, true, true, reading(52)) {
		c.write([]byte{b})
		time.Sleep(time.Millisecond)
	}
	if a := c.ack(); a.Index != 52 || a.Status != http.StatusOK {
		t.Fatalf("message split byte by byte: ack %+v", a)
	}
	e.Sink.WantInOrder(t, 53)

	c.write(clientFrame(opClose, true, true, binary.BigEndian.AppendUint16(nil, uint16(websocket.StatusNormalClosure))))
	if code := c.closeCode(); code != websocket.StatusNormalClosure {
		t.Fatalf("close answered with %d, want 1000", code)
	}
	if _, _, err := c.read(); err != io.EOF {
		t.Fatalf("after the close handshake: %v, want EOF", err)
	}
}

// TestEdge_BadFrames: a frame the gateway cannot read closes the
// connection with the code coder/websocket would send, and nothing of it
// is stored.
func TestEdge_BadFrames(t *testing.T) {
	e, _, url := startEdge(t, Config{MaxMessage: 1 << 10})
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	big := []byte(`[` + strings.Repeat(`{"sensor_id":12,"value":1},`, 60) + `{"sensor_id":12,"value":1}]`)
	for _, tc := range []struct {
		name  string
		frame []byte
		want  websocket.StatusCode
	}{
		{"unmasked", clientFrame(opText, true, false, reading(1)), websocket.StatusProtocolError},
		{"reserved bits", append([]byte{0xc1}, clientFrame(opText, true, true, reading(1))[1:]...), websocket.StatusProtocolError},
		{"unknown opcode", clientFrame(0x3, true, true, reading(1)), websocket.StatusProtocolError},
		{"continuation first", clientFrame(opContinuation, true, true, reading(1)), websocket.StatusProtocolError},
		{"fragmented ping", clientFrame(opPing, false, true, []byte("x")), websocket.StatusProtocolError},
		{"too large", clientFrame(opText, true, true, big), websocket.StatusMessageTooBig},
		{"too large in fragments", append(clientFrame(opText, false, true, big[:1000]), clientFrame(opContinuation, true, true, big[1000:])...), websocket.StatusMessageTooBig},
		{"announced too large", clientFrame(opBinary, true, true, make([]byte, 70000))[:20], websocket.StatusMessageTooBig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, url, tok)
			c.write(tc.frame)
			if code := c.closeCode(); code != tc.want {
				t.Fatalf("closed with %d, want %d", code, tc.want)
			}
			if n := len(e.Sink.Records()); n != 0 {
				t.Fatalf("%d records stored from a bad frame", n)
			}
		})
	}
	t.Run("too large: coder/websocket sends the same code", func(t *testing.T) {
		e, _, url := startEdge(t, Config{MaxMessage: 1 << 10, GoroutinePerConnection: true})
		tok := e.DeviceToken(t, ingesttest.DeviceA)
		conn, _, err := websocket.Dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Write(ctx, websocket.MessageText, big)
		if _, _, err := conn.Read(ctx); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
			t.Fatalf("read after a too-large message: %v, want close 1009", err)
		}
	})
}

// TestEdge_KeepAlive: the gateway pings every PingInterval and ends a
// connection whose pong does not come within WriteTimeout; one that
// answers stays.
func TestEdge_KeepAlive(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testKeepAlive(t, tr.start) })
	}
}

func testKeepAlive(t *testing.T, serveEdge func(*testing.T, Config) (*ingesttest.Env, *Gateway, string)) {
	e, _, url := serveEdge(t, Config{PingInterval: 50 * time.Millisecond, WriteTimeout: 300 * time.Millisecond})
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	silent := dialRaw(t, url, tok)
	answering := dialRaw(t, url, tok)
	pings := 0
	for pings < 5 {
		op, p, err := answering.read()
		if err != nil {
			t.Fatalf("answering client cut off after %d pings: %v", pings, err)
		}
		if op == opPing {
			pings++
			answering.write(clientFrame(opPong, true, true, p))
		}
	}
	start := time.Now()
	for {
		if _, _, err := silent.read(); err != nil {
			break // the connection ended
		}
		if time.Since(start) > 10*time.Second {
			t.Fatal("a client that never answers pings is still connected")
		}
	}
	answering.write(clientFrame(opText, true, true, reading(7)))
	if a := answering.ack(); a.Status != http.StatusOK {
		t.Fatalf("ack %+v", a)
	}
}

// TestEdge_BackPressure: while the bus holds every batch, a client
// pipelining more messages than a connection queues is not read further
// (its queue stays bounded); once the bus is back every message is stored
// and acknowledged, in order.
func TestEdge_BackPressure(t *testing.T) {
	e, g, url := startEdge(t, Config{})
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	unblock := e.Sink.Block()
	defer unblock()
	c := dialRaw(t, url, tok)
	const n = 1000
	go func() {
		for v := 0; v < n; v++ {
			if _, err := c.conn.Write(clientFrame(opText, true, true, reading(v))); err != nil {
				return
			}
		}
	}()
	var wc *wconn
	deadline := time.Now().Add(10 * time.Second)
	for wc == nil && time.Now().Before(deadline) {
		g.poll.Each(func(x *wconn) { wc = x })
		time.Sleep(10 * time.Millisecond)
	}
	if wc == nil {
		t.Fatal("no epoll-read connection")
	}
	for {
		wc.qmu.Lock()
		paused, queued := wc.paused, len(wc.queue)
		wc.qmu.Unlock()
		if paused {
			// What one read brought in beyond the bound is queued too.
			if bound := maxQueued + 16<<10/len(clientFrame(opText, true, true, reading(0))); queued > bound {
				t.Fatalf("%d messages queued, bound %d", queued, bound)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading not paused with %d queued", queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
	unblock()
	for i := 0; i < n; i++ {
		a := c.ack()
		if a.Index != i {
			t.Fatalf("ack %+v, want index %d", a, i)
		}
		if a.Status != http.StatusOK && a.Status != http.StatusServiceUnavailable {
			t.Fatalf("ack %+v", a)
		}
	}
	stored := 0
	for _, r := range e.Sink.Records() {
		if r.GetLongValue() < int64(stored) {
			t.Fatalf("value %d stored after %d: order lost", r.GetLongValue(), stored)
		}
		stored = int(r.GetLongValue())
	}
	if len(e.Sink.Records()) == 0 {
		t.Fatal("nothing stored")
	}
}

// TestEdge_CloseSaysGoingAway: Close ends every epoll-read connection with
// close 1001.
func TestEdge_CloseSaysGoingAway(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e, g, url := tr.start(t, Config{})
			c := dialRaw(t, url, e.DeviceToken(t, ingesttest.DeviceA))
			c.write(clientFrame(opText, true, true, reading(1)))
			if a := c.ack(); a.Status != http.StatusOK {
				t.Fatalf("ack %+v", a)
			}
			if err := g.Close(); err != nil {
				t.Fatal(err)
			}
			if code := c.closeCode(); code != websocket.StatusGoingAway {
				t.Fatalf("closed with %d, want 1001", code)
			}
		})
	}
}

// TestEdge_RoundsMergeConnections: messages of many connections waiting
// at once are made durable together (far fewer bus publishes than
// messages), and each connection still gets its acks in order.
func TestEdge_RoundsMergeConnections(t *testing.T) {
	const n, each = 60, 3
	e, g, url := startEdge(t, Config{})
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	conns := make([]*rawClient, n)
	for i := range conns {
		conns[i] = dialRaw(t, url, tok)
	}
	unblock := e.Sink.Block()
	defer unblock()
	for i, c := range conns {
		for k := 0; k < each; k++ {
			c.write(clientFrame(opText, true, true, reading(i*each+k)))
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for queued := 0; queued < n*each; {
		queued = 0
		g.poll.Each(func(c *wconn) {
			c.qmu.Lock()
			queued += len(c.queue)
			c.qmu.Unlock()
		})
		if g.workers.Alive() == maxWorkers {
			// Busy workers hold what they took: count them in.
			queued = n * each
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d messages read while the bus is blocked", queued)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := e.Sink.Batches()
	unblock()
	for i, c := range conns {
		for k := 0; k < each; k++ {
			if a := c.ack(); a.Index != k || (a.Status != http.StatusOK && a.Status != http.StatusServiceUnavailable) {
				t.Fatalf("connection %d: ack %+v, want index %d", i, a, k)
			}
		}
	}
	if got := e.Sink.Batches() - before; got > n*each/4 {
		t.Fatalf("%d bus publishes for %d messages of %d connections: not merged", got, n*each, n)
	}
	if w := g.workers.Started(); w > maxWorkers {
		t.Fatalf("%d workers started, bound %d", w, maxWorkers)
	}
}

// TestEdge_SweepEvery: with the defaults the sweep visits the connections
// every 5 s (pings every 30 s, pong wait 10 s), and short settings make it
// as frequent as they need (down to 10 ms).
func TestEdge_SweepEvery(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	for _, tc := range []struct {
		cfg  Config
		want time.Duration
	}{
		{Config{}, 5 * time.Second},
		{Config{PingInterval: 50 * time.Millisecond, WriteTimeout: 300 * time.Millisecond}, 12500 * time.Microsecond},
		{Config{IdleTimeout: 200 * time.Millisecond}, 50 * time.Millisecond},
		{Config{PingInterval: time.Millisecond}, 10 * time.Millisecond},
	} {
		if got := New(e.Log, e.Verifier, e.Service, tc.cfg).sweepEvery(); got != tc.want {
			t.Errorf("%+v: sweep every %v, want %v", tc.cfg, got, tc.want)
		}
	}
}

// TestEdge_TrickledMessageCopiedLinearly: a message arriving in many small
// pieces is kept by appending, not copied whole for every piece (which a
// client trickling a 1 MiB message 100 bytes at a time would turn into
// gigabytes of copying).
func TestEdge_TrickledMessageCopiedLinearly(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	g := New(e.Log, e.Verifier, e.Service, Config{})
	c := &wconn{g: g}
	payload := []byte(strings.Repeat("x", 256<<10))
	frame := clientFrame(opBinary, false, true, payload) // fin false: stays a fragment, nothing is ingested
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for off := 0; off < len(frame); off += 1 << 10 {
		if err := c.consume(frame[off:min(off+1<<10, len(frame))]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if c.fragType != opBinary || len(c.frag) != len(payload) {
		t.Fatalf("fragment of %d bytes kept, want %d", len(c.frag), len(payload))
	}
	// Linear: a few times the frame (growth by doubling, the unmasked
	// copy); a copy per piece would be 256 × 128 KiB on average = 32 MiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(8*len(frame)) {
		t.Fatalf("%d bytes allocated to read a %d-byte frame in 1 KiB pieces", got, len(frame))
	}
}

// TestEdge_ClientNotReadingAcksDoesNotStallOthers: a client that sends
// messages with large acks (a thousand item errors each, 88 KB) and never
// reads them fills its socket's buffers; meanwhile another client on the
// same gateway is acknowledged at once, and the one that does not read is
// cut off after WriteTimeout.
func TestEdge_ClientNotReadingAcksDoesNotStallOthers(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			const writeTimeout, n = time.Second, 200 // 17 MB of acks: more than the buffers hold
			e, g, url := tr.start(t, Config{WriteTimeout: writeTimeout})
			tok := e.DeviceToken(t, ingesttest.DeviceA)
			var b strings.Builder
			b.WriteString("[")
			for i := range 1000 {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"sensor_id":%d,"value":%d}`, ingesttest.SensorOfB, i)
			}
			b.WriteString("]")
			bad := clientFrame(opText, true, true, []byte(b.String()))
			c := dialRaw(t, url, tok)
			silent := dialRaw(t, url, tok)
			go func() {
				for range n {
					if _, err := silent.conn.Write(bad); err != nil {
						return
					}
				}
			}()
			// Round trips until the client that does not read is cut off;
			// some must complete while it is still connected (no timing:
			// CI machines are slow at times).
			deadline := time.Now().Add(30 * time.Second)
			whileStuck := 0
			for i := 0; ; i++ {
				c.write(clientFrame(opText, true, true, reading(i)))
				if a := c.ack(); a.Index != i || a.Status != http.StatusOK {
					t.Fatalf("ack %+v, want index %d status 200", a, i)
				}
				open := 0
				g.poll.Each(func(*wconn) { open++ })
				if open == 1 {
					if whileStuck == 0 {
						t.Fatal("no ack while the other client was connected and not reading")
					}
					break
				}
				whileStuck++
				if time.Now().After(deadline) {
					t.Fatal("a client that does not read its acks is still connected")
				}
				time.Sleep(20 * time.Millisecond)
			}
			acks := 0
			for {
				op, _, err := silent.read()
				if err != nil {
					break
				}
				if op == opText {
					acks++
				}
			}
			if acks >= n {
				t.Fatalf("a client cut off got all %d acks", acks)
			}
			t.Logf("the client that did not read got %d acks of %d before it was cut off", acks, n)
		})
	}
}

// TestEdge_TLSRecordsSentWithTheUpgrade: messages sent in TLS records of
// their own right after the upgrade request, before its response, are
// read (crypto/tls may hold them when the connection switches to epoll,
// which will not report them) and acknowledged in order.
func TestEdge_TLSRecordsSentWithTheUpgrade(t *testing.T) {
	e, _, url := startEdgeTLS(t, Config{}, false)
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	for k := range 20 {
		c := dialRawSplit(t, url, tok, false, nil, clientFrame(opText, true, true, reading(3*k)),
			clientFrame(opText, true, true, reading(3*k+1)), clientFrame(opText, true, true, reading(3*k+2)))
		for i := range 3 {
			if a := c.ack(); a.Index != i || a.Status != http.StatusOK {
				t.Fatalf("connection %d: ack %+v, want index %d status 200", k, a, i)
			}
		}
	}
	e.Sink.WantInOrder(t, 60)
}
