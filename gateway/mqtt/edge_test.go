package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/netpoll"
	"github.com/iotplatform/iotplatform/internal/tlsconfig/tlstest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

func startEdge(t *testing.T, cfg Config) (*ingesttest.Env, *Gateway, string) {
	t.Helper()
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 30 * time.Second})
	g, err := New(e.Log, e.Verifier, e.Service, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return e, g, serveEdge(t, g)
}

// serveEdge serves g on a local port until the test ends and returns the
// address; a Serve that does not return after its context ends fails the
// test with the goroutines.
func serveEdge(t *testing.T, g *Gateway) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Errorf("Serve did not return within 30 s of its context ending; goroutines:\n%s", b.String())
		}
	})
	return ln.Addr().String()
}

// mqttString is an MQTT UTF-8 string (length-prefixed).
func mqttString(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// packet frames an MQTT packet (remaining length < 16384).
func packet(header byte, body []byte) []byte {
	n := len(body)
	if n < 128 {
		return append([]byte{header, byte(n)}, body...)
	}
	return append([]byte{header, byte(n%128) | 0x80, byte(n / 128)}, body...)
}

// connectPacket is an MQTT 3.1.1 CONNECT with username JWT and the token.
func connectPacket(clientID, token string, keepalive uint16) []byte {
	body := append(mqttString("MQTT"), 4, 0x80|0x40|0x02, byte(keepalive>>8), byte(keepalive))
	body = append(body, mqttString(clientID)...)
	body = append(body, mqttString("JWT")...)
	body = append(body, mqttString(token)...)
	return packet(0x10, body)
}

// publishPacket is a QoS 1 PUBLISH of one reading to the device's topic,
// valued pid-1 (ingesttest.Sink.WantInOrder).
func publishPacket(device int64, pid uint16, ts int) []byte {
	body := append(mqttString(strconv.FormatInt(device, 10)), byte(pid>>8), byte(pid))
	body = append(body, `{"sensor_id":12,"timestamp":`+strconv.Itoa(ts)+`,"value":`+strconv.Itoa(int(pid)-1)+`}`...)
	return packet(0x32, body)
}

// dialRaw opens a connection and writes b.
func dialRaw(t *testing.T, addr string, b []byte) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := conn.Write(b); err != nil {
		t.Fatal(err)
	}
	return conn
}

// connected opens a connection, sends CONNECT (connectPacket) and expects
// its CONNACK.
func connected(t *testing.T, addr, clientID, token string, keepalive uint16) net.Conn {
	t.Helper()
	conn := dialRaw(t, addr, connectPacket(clientID, token, keepalive))
	expect(t, conn, "connack", connackOK)
	return conn
}

// connectedMany opens n connections (client ids prefix0…) with connected.
func connectedMany(t *testing.T, addr, prefix, token string, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = connected(t, addr, prefix+strconv.Itoa(i), token, 60)
	}
	return conns
}

// expect reads len(want) bytes and compares them.
func expect(t *testing.T, conn net.Conn, what string, want []byte) {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got % x, want % x", what, got, want)
	}
}

var connackOK = []byte{0x20, 2, 0, 0}

func puback(pid uint16) []byte { return []byte{0x40, 2, byte(pid >> 8), byte(pid)} }

// TestEdge_NoGoroutinePerConnection: 300 connected devices that have each
// published a reading hold no goroutine each on the epoll path, where
// mochi's loop holds two.
func TestEdge_NoGoroutinePerConnection(t *testing.T) {
	const n = 300
	for _, tc := range []struct {
		name       string
		cfg        Config
		atMost     int
		atLeastPer int
	}{{"epoll", Config{}, n / 10, 0}, {"mochi loop", Config{GoroutinePerConnection: true}, 0, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			e, g, addr := startEdge(t, tc.cfg)
			g.workers.SetIdle(50 * time.Millisecond)
			token := e.DeviceToken(t, ingesttest.DeviceA)
			before := runtime.NumGoroutine()
			for i := range n {
				conn := connected(t, addr, "d"+strconv.Itoa(i), token, 60)
				if _, err := conn.Write(publishPacket(ingesttest.DeviceA, 1, 1526717967+i)); err != nil {
					t.Fatal(err)
				}
				expect(t, conn, "puback", puback(1))
			}
			time.Sleep(time.Second + 200*time.Millisecond) // idle readers and workers end
			grown := runtime.NumGoroutine() - before
			if tc.atLeastPer == 0 && grown > tc.atMost {
				t.Fatalf("%d goroutines more with %d idle connections, want at most %d", grown, n, tc.atMost)
			}
			if tc.atLeastPer > 0 && grown < tc.atLeastPer*n {
				t.Fatalf("%d goroutines more with %d connections on mochi's loop, want at least %d (the comparison is void)", grown, n, tc.atLeastPer*n)
			}
			if got := len(e.Sink.Records()); got != n {
				t.Fatalf("%d stored, want %d", got, n)
			}
		})
	}
}

// TestEdge_PipelinedAndSplitPackets: CONNECT and two PUBLISHes in one
// write, then a PUBLISH written a byte at a time, then two in one write
// with the second cut in half: each is acked once, in order, and stored.
func TestEdge_PipelinedAndSplitPackets(t *testing.T) {
	e, _, addr := startEdge(t, Config{})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	first := append(connectPacket("split", token, 60), publishPacket(ingesttest.DeviceA, 1, 1526717961)...)
	first = append(first, publishPacket(ingesttest.DeviceA, 2, 1526717962)...)
	conn := dialRaw(t, addr, first)
	expect(t, conn, "connack", connackOK)
	expect(t, conn, "pubacks 1, 2", append(puback(1), puback(2)...))
	for _, b := range publishPacket(ingesttest.DeviceA, 3, 1526717963) {
		if _, err := conn.Write([]byte{b}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	expect(t, conn, "puback 3", puback(3))
	two := append(publishPacket(ingesttest.DeviceA, 4, 1526717964), publishPacket(ingesttest.DeviceA, 5, 1526717965)...)
	cut := len(two) - 7
	if _, err := conn.Write(two[:cut]); err != nil {
		t.Fatal(err)
	}
	expect(t, conn, "puback 4", puback(4))
	time.Sleep(50 * time.Millisecond)
	if _, err := conn.Write(two[cut:]); err != nil {
		t.Fatal(err)
	}
	expect(t, conn, "puback 5", puback(5))
	e.Sink.WantInOrder(t, 5)
}

// TestEdge_BurstLongerThanATurn: a client writing far more than one
// reading turn (readTurn) at once, while another writes single packets,
// has every publish acked in order: a turn that yields hands the
// connection on (epoll reports no new edge for bytes already waiting),
// and bytes arriving during a turn are read by that turn's reader.
func TestEdge_BurstLongerThanATurn(t *testing.T) {
	e, _, addr := startEdge(t, Config{QueueSize: 4096})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	const n = 3000
	var burst, acks []byte
	for i := 1; i <= n; i++ {
		burst = append(burst, publishPacket(ingesttest.DeviceA, uint16(i), 1526717967+i)...)
		acks = append(acks, puback(uint16(i))...)
	}
	if len(burst) < 2*readTurn {
		t.Fatalf("burst of %d bytes, want more than two turns (%d)", len(burst), 2*readTurn)
	}
	conn := connected(t, addr, "burst", token, 60)
	other := connected(t, addr, "other", token, 60)
	done := make(chan error, 1)
	go func() {
		_, err := conn.Write(burst)
		done <- err
	}()
	for i := 1; i <= 20; i++ {
		if _, err := other.Write(publishPacket(ingesttest.DeviceA, uint16(i), 1526700000+i)); err != nil {
			t.Fatal(err)
		}
		expect(t, other, "puback of the other client", puback(uint16(i)))
	}
	expect(t, conn, "pubacks of the burst", acks)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := len(e.Sink.Records()); got != n+20 {
		t.Fatalf("%d stored, want %d", got, n+20)
	}
}

// TestEdge_ReadersBoundedUnderBackPressure: with the bus blocked and one
// publish per client allowed to wait, 100 clients pipelining 3 publishes
// each block readers on their full queues; the readers stay within
// maxReaders, and once the bus recovers every publish is acked in order.
func TestEdge_ReadersBoundedUnderBackPressure(t *testing.T) {
	e, g, addr := startEdge(t, Config{QueueSize: 1})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	const n = 100
	conns := connectedMany(t, addr, "bp", token, n)
	unblock := e.Sink.Block()
	for i, c := range conns {
		var three []byte
		for k := 1; k <= 3; k++ {
			three = append(three, publishPacket(ingesttest.DeviceA, uint16(k), 1526717967+3*i+k)...)
		}
		if _, err := c.Write(three); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(500 * time.Millisecond)
	if r := g.readers.Alive(); r > maxReaders {
		t.Fatalf("%d readers, bound is %d", r, maxReaders)
	}
	if r := g.readers.Started(); r < 2 {
		t.Fatalf("%d readers started for 100 clients blocked on full queues: the comparison is void", r)
	}
	unblock()
	for i, c := range conns {
		expect(t, c, "pubacks of client "+strconv.Itoa(i), append(append(puback(1), puback(2)...), puback(3)...))
	}
	if got := len(e.Sink.Records()); got != 3*n {
		t.Fatalf("%d stored, want %d", got, 3*n)
	}
}

// TestEdge_AckWriteNeverWaitsOnAClientThatDoesNotRead: acks to a client
// whose socket buffer is full (it never reads) fail instead of holding the
// worker: at once on an epoll-read connection, within ackWriteTimeout on
// any other (a pipe nobody reads).
func TestEdge_AckWriteNeverWaitsOnAClientThatDoesNotRead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	_ = client.(*net.TCPConn).SetReadBuffer(4096)
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	_ = server.(*net.TCPConn).SetWriteBuffer(4096)
	c := &pconn{Conn: server, raw: netpoll.Pollable(server)}
	chunk := make([]byte, 64<<10)
	var werr error
	for i := 0; i < 1000 && werr == nil; i++ {
		werr = writeAcks(c, chunk)
	}
	if !errors.Is(werr, errNotReading) {
		t.Fatalf("writing to a client that never reads: %v, want errNotReading", werr)
	}

	p1, p2 := net.Pipe()
	defer p1.Close()
	defer p2.Close()
	done := make(chan error, 1)
	go func() { done <- writeAcks(p1, puback(1)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("write to a pipe nobody reads succeeded")
		}
	case <-time.After(10 * ackWriteTimeout):
		t.Fatal("ack write still waiting on a client that does not read")
	}
	// The deadline is cleared again: mochi's own writes on the connection
	// are not cut short by it.
	go func() { _, _ = io.ReadFull(p2, make([]byte, 4)) }()
	time.Sleep(2 * ackWriteTimeout)
	if _, err := p1.Write(puback(2)); err != nil {
		t.Fatalf("a later write failed: %v (the ack deadline was left set)", err)
	}
}

// TestEdge_TopicAliasResolved: MQTT 5 readings published with a topic
// alias — the first with the topic, the second with the alias alone — are
// both acked and stored, on both read paths (mochi checks its topic ACL
// before resolving an alias, and refused the second with 0x87).
func TestEdge_TopicAliasResolved(t *testing.T) {
	for _, perConn := range []bool{false, true} {
		t.Run("goroutine per connection "+strconv.FormatBool(perConn), func(t *testing.T) { topicAlias(t, perConn) })
	}
}

func topicAlias(t *testing.T, perConn bool) {
	e, _, addr := startEdge(t, Config{GoroutinePerConnection: perConn})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	body := append(mqttString("MQTT"), 5, 0x80|0x40|0x02, 0, 60, 0) // level 5, no properties
	body = append(body, mqttString("alias")...)
	body = append(body, mqttString("JWT")...)
	body = append(body, mqttString(token)...)
	conn := dialRaw(t, addr, packet(0x10, body))
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil || hdr[0] != 0x20 {
		t.Fatalf("connack header % x: %v", hdr, err)
	}
	connack := make([]byte, hdr[1])
	if _, err := io.ReadFull(conn, connack); err != nil || connack[1] != 0 {
		t.Fatalf("connack % x: %v", connack, err)
	}
	publish := func(topic string, pid uint16, value int) []byte {
		b := append(mqttString(topic), byte(pid>>8), byte(pid), 3, 0x23, 0, 1) // topic alias 1
		b = append(b, `{"sensor_id":12,"timestamp":`+strconv.Itoa(1526717967+value)+`,"value":`+strconv.Itoa(value)+`}`...)
		return packet(0x32, b)
	}
	if _, err := conn.Write(append(publish("1", 1, 0), publish("", 2, 1)...)); err != nil {
		t.Fatal(err)
	}
	expect(t, conn, "pubacks", append(puback(1), puback(2)...))
	e.Sink.WantInOrder(t, 2)
}

// TestEdge_KeepaliveEndsSilentClients: a client silent for 1.5 × its
// keep-alive is disconnected and its session removed; one that pings in
// time stays.
func TestEdge_KeepaliveEndsSilentClients(t *testing.T) {
	e, g, addr := startEdge(t, Config{})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	silent := connected(t, addr, "silent", token, 1)
	pinging := connected(t, addr, "pinging", token, 1)
	stop := time.Now().Add(4 * time.Second)
	for time.Now().Before(stop) {
		if _, err := pinging.Write([]byte{0xc0, 0}); err != nil {
			t.Fatalf("pinging client cut off: %v", err)
		}
		expect(t, pinging, "pingresp", []byte{0xd0, 0})
		time.Sleep(400 * time.Millisecond)
	}
	_ = silent.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Fatalf("silent client with keep-alive 1 s still connected after 4 s (read: %v)", err)
	}
	if _, err := pinging.Write([]byte{0xc0, 0}); err != nil {
		t.Fatal(err)
	}
	expect(t, pinging, "pingresp after the silent one ended", []byte{0xd0, 0})
	sessions := 0
	g.sessions.Range(func(_, _ any) bool { sessions++; return true })
	if sessions != 1 {
		t.Fatalf("%d sessions, want the pinging client's only", sessions)
	}
}

func isTimeoutErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestEdge_TakeoverAndOversizedPublish: a second connection of the same
// device and client id takes the session over (the first is closed); a
// PUBLISH announcing more than the packet bound closes the connection
// from its header, and nothing of it is stored.
func TestEdge_TakeoverAndOversizedPublish(t *testing.T) {
	e, g, addr := startEdge(t, Config{MaxPacket: 4096})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	first := connected(t, addr, "same", token, 60)
	second := connected(t, addr, "same", token, 60)
	_ = first.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(first); err != nil && !isTimeoutErr(err) {
		t.Logf("first connection: %v", err)
	} else if err != nil {
		t.Fatal("first connection still open after the takeover")
	}
	if _, err := second.Write(publishPacket(ingesttest.DeviceA, 7, 1526717967)); err != nil {
		t.Fatal(err)
	}
	expect(t, second, "puback on the new session", puback(7))
	// PUBLISH fixed header announcing 1 MiB, then a little of it.
	if _, err := second.Write(append([]byte{0x32, 0x80, 0x80, 0x40}, make([]byte, 512)...)); err != nil {
		t.Fatal(err)
	}
	_ = second.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil || isTimeoutErr(err) {
		t.Fatalf("connection still open after an oversized PUBLISH header (read: %v)", err)
	}
	if n := len(e.Sink.Records()); n != 1 {
		t.Fatalf("%d stored, want 1", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		sessions := 0
		g.sessions.Range(func(_, _ any) bool { sessions++; return true })
		if sessions == 0 && g.srv.Clients.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions and %d mochi clients left after both connections ended", sessions, g.srv.Clients.Len())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestEdge_TLSClientsReadThroughEpoll: with the gateway serving TLS, 100
// TLS clients publish and are acked (one PUBLISH split over two TLS
// records written apart, so a record arrives while its rest is missing),
// and once idle they hold no goroutine each.
func TestEdge_TLSClientsReadThroughEpoll(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "mqtt")
	leaf := ca.Server(t, dir, "server")
	cert := tls.Certificate{Certificate: [][]byte{leaf.Cert.Raw}, PrivateKey: leaf.Key}
	e, g, addr := startEdge(t, Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}})
	g.workers.SetIdle(50 * time.Millisecond)
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	token := e.DeviceToken(t, ingesttest.DeviceA)
	before := runtime.NumGoroutine()
	const n = 100
	for i := range n {
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		if _, err := conn.Write(connectPacket("tls"+strconv.Itoa(i), token, 60)); err != nil {
			t.Fatal(err)
		}
		expect(t, conn, "connack", connackOK)
		pub := publishPacket(ingesttest.DeviceA, 1, 1526717967+i)
		if i == 0 {
			if _, err := conn.Write(pub[:5]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(50 * time.Millisecond)
			pub = pub[5:]
		}
		if _, err := conn.Write(pub); err != nil {
			t.Fatal(err)
		}
		expect(t, conn, "puback", puback(1))
	}
	time.Sleep(time.Second + 200*time.Millisecond)
	if grown := runtime.NumGoroutine() - before; grown > n/5 {
		t.Fatalf("%d goroutines more with %d idle TLS connections, want at most %d", grown, n, n/5)
	}
	if got := len(e.Sink.Records()); got != n {
		t.Fatalf("%d stored, want %d", got, n)
	}
}

// TestEdge_PartialPacketHoldsWhatArrived: a PUBLISH announcing 512 KiB of
// which 100 bytes arrived holds a buffer the size of those bytes, not of
// the announcement; the rest completes it and it is acked.
func TestEdge_PartialPacketHoldsWhatArrived(t *testing.T) {
	e, g, addr := startEdge(t, Config{})
	conn := connected(t, addr, "partial", e.DeviceToken(t, ingesttest.DeviceA), 60)
	// A reading padded with spaces to 512 KiB: JSON allows them.
	topic := mqttString(strconv.Itoa(ingesttest.DeviceA))
	payload := []byte(`{"sensor_id":12,"timestamp":1526717967,"value":0}`)
	body := append(append(topic, 0, 9), append(payload, bytes.Repeat([]byte(" "), 512<<10-len(topic)-2-len(payload))...)...)
	n := len(body)
	pkt := append([]byte{0x32, byte(n%128) | 0x80, byte(n/128%128) | 0x80, byte(n / 16384)}, body...)
	if _, err := conn.Write(pkt[:100]); err != nil {
		t.Fatal(err)
	}
	held := -1
	deadline := time.Now().Add(5 * time.Second)
	for held < 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		g.poll.Each(func(c *pconn) {
			c.mu.Lock()
			if len(c.partial) > 0 {
				held = cap(c.partial)
			}
			c.mu.Unlock()
		})
	}
	if held < 0 || held > partialStart {
		t.Fatalf("an incomplete 512 KiB packet of which 100 bytes arrived holds %d bytes, want ≤ %d", held, partialStart)
	}
	if _, err := conn.Write(pkt[100:]); err != nil {
		t.Fatal(err)
	}
	expect(t, conn, "puback", puback(9))
	e.Sink.WantInOrder(t, 1)
}

// TestEdge_TrickledPacketCopiedLinearly: a packet arriving in many small
// pieces is kept by appending, not copied whole for every piece (a client
// trickling a 1 MiB publish 100 bytes at a time would otherwise cost
// gigabytes of copying).
func TestEdge_TrickledPacketCopiedLinearly(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	g, err := New(e.Log, e.Verifier, e.Service, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &pconn{g: g}
	body := 256 << 10
	pk := []byte{0x30} // PUBLISH, QoS 0; only its first bytes arrive: it never completes
	for n := body; ; n >>= 7 {
		if n < 0x80 {
			pk = append(pk, byte(n))
			break
		}
		pk = append(pk, byte(n&0x7f)|0x80)
	}
	pk = append(pk, make([]byte, body-1)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for off := 0; off < len(pk); off += 1 << 10 {
		if err := c.consume(pk[off:min(off+1<<10, len(pk))]); err != nil {
			t.Fatal(err)
		}
	}
	runtime.ReadMemStats(&after)
	if len(c.partial) != len(pk) {
		t.Fatalf("%d bytes kept, want %d", len(c.partial), len(pk))
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > uint64(8*len(pk)) {
		t.Fatalf("%d bytes allocated to keep a %d-byte packet arriving in 1 KiB pieces", got, len(pk))
	}
}
