package ws

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/netpoll"
	"github.com/iotplatform/iotplatform/services/ingest"
	"go.opentelemetry.io/otel/trace"
)

// Event-driven reads (Linux; `--ws-epoll`, on by default).
//
// coder/websocket reads each connection on a goroutine of its own, parked
// in Conn.Read with its buffers; at fleet shape, many devices each sending
// once a second, those stacks and buffers were most of the server's memory
// (54 KiB per device at 19,000, docs/BENCHMARKS.md, issue #18). An
// HTTP/1.1 upgrade is therefore taken over by the gateway: it answers the
// handshake itself on the hijacked connection, registers the socket with
// epoll (internal/netpoll) and reads it only when it has bytes, on a small
// pool of readers; each whole message is queued on the connection, and a
// connection with messages goes to a bounded pool of workers that ingest
// and acknowledge them in order. An idle device costs its socket and a
// wconn: no goroutine, no buffer.
//
// TLS connections (wss://) are read the same way when the server accepts
// them through Listener, as the MQTT edge's are (gateway/mqtt/edge.go):
// the socket under crypto/tls is a netpoll.NonBlocking, blocking for the
// TLS handshake and the upgrade request, switched to never waiting once
// the connection is taken over; a reader then reads the *tls.Conn until it
// would block (crypto/tls may hold more records than the socket shows, and
// holds a partial one until the rest arrives). Writes cannot go to the raw
// socket (they are records of the TLS stream), and a TLS write cut short by
// a deadline breaks the stream; so what the plain path writes without
// waiting (acks, pings, pongs, closes: writeSome) is written through TLS
// only when it is short and the socket's buffer has room for it at once
// (netpoll.Writable), with a short deadline should the room run out
// meanwhile; otherwise pings and closes wait for the next sweep and acks
// and pongs go to the goroutine that takes over a write that cannot
// complete at once, as on the plain path.
//
// What a client sees is the same on both paths: the same acks, close codes
// (1008 idle timeout or revoked credentials, 1009 too large, 1002 protocol
// errors) and keep-alive pings. No extension is negotiated (coder/websocket
// does not compress by default either). TLS connections not accepted
// through Listener, `--ws-epoll=false` and platforms other than Linux use
// coder/websocket.

// Reader bounds, as the MQTT edge's (gateway/mqtt/edge.go).
const (
	readerIdle = time.Second
	maxReaders = 64
	readTurn   = 64 << 10
	// maxQueued messages of one connection wait for a worker; beyond it
	// the connection is not read until the worker catches up (half).
	maxQueued = 64
	// maxWorkers bounds the goroutines ingesting messages in rounds
	// (round), each taking up to maxRound connections with messages and
	// publishing their records together, in publishes of up to maxMerge;
	// more connections with messages wait their turn.
	maxWorkers = 8
	maxRound   = 1024
	maxMerge   = 5000
	workerIdle = time.Second
	// closeWait is how long a closing connection waits for the client's
	// close frame.
	closeWait = 5 * time.Second
	// tlsNowMax bounds what writeSome writes through TLS (a turn's acks,
	// a control frame) when the socket's buffer has room (at least half
	// of what it holds free, and a few KiB at the least): more goes to
	// the goroutine path. tlsNowTimeout bounds such a write should the
	// room run out all the same (the connection then ends: a record cut
	// short cannot be resumed).
	tlsNowMax     = 2 << 10
	tlsNowTimeout = time.Second
)

// WebSocket opcodes (RFC 6455 section 5.2).
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// closeError ends a connection with a close frame.
type closeError struct {
	code   websocket.StatusCode
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("websocket close %d: %s", e.code, e.reason) }

func protocolError(reason string) error {
	return &closeError{code: websocket.StatusProtocolError, reason: reason}
}

// message is one whole data message.
type message struct {
	typ  websocket.MessageType
	data []byte
}

// wconn is one device connection read through epoll.
type wconn struct {
	netpoll.State
	net.Conn                 // as hijacked (the listener's wrappers, or *tls.Conn); writes go through it
	raw      syscall.RawConn // the socket (under crypto/tls too)
	// tls is Conn on a TLS connection, read through nb (nil: plain).
	tls     *tls.Conn
	nb      *netpoll.NonBlocking
	g       *Gateway
	p       authn.Principal
	recheck func(context.Context) (int, error)
	// ctx is the upgrade request's, without its cancellation: a message
	// read before the connection ended is still ingested.
	ctx   context.Context
	token atomic.Uint64 // epoll's key (Poller.Add)

	// mu is held by the connection's reader: partial holds the bytes of
	// a frame not yet whole, frag the data of a fragmented message so far
	// (fragType its opcode, 0 between messages). An idle connection holds
	// neither.
	mu       sync.Mutex
	partial  []byte
	frag     []byte
	fragType byte
	// discard: after a protocol error the rest is not read as frames,
	// only drained until the client closes (or closeWait passes).
	discard bool

	// qmu guards the messages waiting for a worker (running while one
	// has the connection) and paused (the queue is full: the connection
	// is not read).
	qmu     sync.Mutex
	queue   []message
	running bool
	paused  bool
	index   int // the count of messages handled (by one worker at a time)

	// wmu is held while a frame is written.
	wmu sync.Mutex

	// Unix-nano instants: the last data message or ack (idle timeout),
	// the last ping, an unanswered ping (0: none), and the end of a close
	// handshake begun by the gateway (0: not closing).
	lastData, lastPing, pingSent, closeAt atomic.Int64

	// pongOwed is the payload of the latest ping not yet answered.
	pongOwed atomic.Pointer[[]byte]

	endOnce sync.Once
	done    atomic.Bool
	// stopCmds ends the command session (nil: none, or ended); release
	// frees the device's stream slot.
	stopCmds atomic.Pointer[func()]
	release  func()
}

// startEdge starts the poller, its readers and the keep-alive sweep on
// first use; false when connections are read by coder/websocket.
func (g *Gateway) startEdge() bool {
	g.edgeOnce.Do(func() {
		if g.cfg.GoroutinePerConnection {
			return
		}
		p, err := netpoll.NewPoller[*wconn]()
		if err != nil {
			g.log.Warn("ws connections read by one goroutine each: no epoll", "err", err)
			return
		}
		g.poll = p
		g.readers = netpoll.NewPool[*wconn](maxReaders, readerIdle, g.reader)
		g.workers = netpoll.NewPool[*wconn](maxWorkers, workerIdle, g.work)
		g.sweepStop, g.sweepDone = make(chan struct{}), make(chan struct{})
		go p.Wait(func(c *wconn) { g.readers.Push(c) })
		go g.sweep()
	})
	return g.poll != nil && !g.closed.Load()
}

// Close closes the connections read through epoll (close 1001, going away)
// and stops their poller. Connections read by coder/websocket end with the
// process.
func (g *Gateway) Close() error {
	if !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	g.edgeOnce.Do(func() {}) // no poller starts after Close
	if g.poll == nil {
		return nil
	}
	close(g.sweepStop)
	<-g.sweepDone
	g.poll.Each(func(c *wconn) {
		c.closeSoon(websocket.StatusGoingAway, "server shutting down") // no wait on a client that does not read
		c.end()
	})
	g.poll.Close()
	return nil
}

// Listener wraps the listener of a server that serves the gateway over
// TLS (http.Server.ServeTLS wraps its connections in crypto/tls): the TCP
// connections it accepts can be switched to reads that never wait
// (netpoll.NonBlocking), so that wss:// upgrades are read through epoll
// too. Without it TLS connections are read by coder/websocket.
func (g *Gateway) Listener(ln net.Listener) net.Listener {
	if g.cfg.GoroutinePerConnection {
		return ln
	}
	g.tlsEpoll.Store(true)
	return netpoll.NonBlockingListener(ln)
}

// upgradable reports a well-formed HTTP/1.1 WebSocket upgrade (RFC 6455
// section 4.2.1), over TLS only when its connection came through Listener;
// anything else goes to coder/websocket, which answers it with the right
// error.
func (g *Gateway) upgradable(r *http.Request) bool {
	keys := r.Header.Values("Sec-WebSocket-Key")
	if r.TLS != nil && !g.tlsEpoll.Load() || r.ProtoMajor != 1 || !r.ProtoAtLeast(1, 1) || r.Method != http.MethodGet || len(keys) != 1 ||
		!headerHasToken(r.Header, "Connection", "upgrade") || !headerHasToken(r.Header, "Upgrade", "websocket") ||
		r.Header.Get("Sec-WebSocket-Version") != "13" {
		return false
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0]))
	return err == nil && len(k) == 16
}

func headerHasToken(h http.Header, key, token string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// acceptKey is Sec-WebSocket-Accept for the client's key.
func acceptKey(key string) string {
	h := sha1.New()
	h.Write([]byte(strings.TrimSpace(key)))
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// accept takes an authenticated upgrade over when it can be read through
// epoll (false: the caller serves it with coder/websocket). It owns
// release from then on.
func (g *Gateway) accept(w http.ResponseWriter, r *http.Request, p authn.Principal, subproto string, recheck func(context.Context) (int, error), release func()) bool {
	if !g.upgradable(r) || !g.startEdge() {
		return false
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return false
	}
	raw := netpoll.Pollable(conn)
	tc, _ := conn.(*tls.Conn)
	var nb *netpoll.NonBlocking
	if tc != nil {
		if nb = netpoll.NonBlockingUnder(tc.NetConn()); nb != nil {
			raw = nb.Raw()
		}
	}
	if raw == nil {
		// Not a TCP socket under the listener's wrappers (or a TLS one
		// not accepted through Listener, served by another server):
		// nothing to read through epoll, and the connection is ours now.
		g.log.Error("ws connection not pollable", "remote", r.RemoteAddr)
		_, _ = conn.Write([]byte("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
		conn.Close()
		release()
		return true
	}
	c := &wconn{Conn: conn, raw: raw, tls: tc, nb: nb, g: g, p: p, recheck: recheck, release: release,
		ctx: context.WithoutCancel(r.Context())}
	now := time.Now().UnixNano()
	c.lastData.Store(now)
	c.lastPing.Store(now)
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(r.Header.Get("Sec-WebSocket-Key")) + "\r\n"
	if subproto != "" {
		resp += "Sec-WebSocket-Protocol: " + subproto + "\r\n"
	}
	_ = conn.SetDeadline(time.Time{}) // the server's header deadlines
	_ = conn.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
	if _, err := conn.Write([]byte(resp + "\r\n")); err != nil {
		c.end()
		return true
	}
	_ = conn.SetWriteDeadline(time.Time{}) // raw writes (writeNow) obey it too
	if g.cmds != nil {
		stop := g.serveCommands(c.ctx, c, p, recheck)
		c.stopCmds.Store(&stop)
		if c.done.Load() { // a command's write failed meanwhile
			c.endCommands()
		}
	}
	if nb != nil {
		nb.SetNonBlocking() // nothing reads the connection until it is registered
	}
	// Bytes the client sent right after its request are in net/http's
	// buffer, not in the socket: epoll will not report them.
	if n := brw.Reader.Buffered(); n > 0 {
		early, _ := brw.Reader.Peek(n)
		c.mu.Lock()
		if err := c.consume(append([]byte(nil), early...)); err != nil {
			c.fail(err)
		}
		c.mu.Unlock()
	}
	token, err := g.poll.Add(c, raw)
	if err != nil {
		g.log.Warn("ws connection not registered", "err", err)
		c.end()
		return true
	}
	c.token.Store(token)
	if c.done.Load() { // ended meanwhile: end may have removed nothing
		g.poll.Remove(token)
		return true
	}
	// Records crypto/tls read with the request are not in the socket
	// either: a reader reads them now.
	if c.tls != nil && c.Claim() {
		g.readers.Push(c)
	}
	return true
}

// reader reads ready connections; it ends after readerIdle without one.
func (g *Gateway) reader() {
	buf := make([]byte, 16<<10)
	g.readers.Each(func(c *wconn) { c.handle(buf) })
}

// handle reads what the connection holds and queues every whole message,
// until the socket is empty (or the connection paused) and no event came
// meanwhile; after a turn's worth it hands the connection to the next
// reader (it stays claimed).
func (c *wconn) handle(buf []byte) {
	for {
		c.mu.Lock()
		alive, yielded := c.drain(buf)
		c.mu.Unlock()
		switch {
		case !alive:
			return
		case yielded:
			c.g.readers.Push(c)
			return
		case c.Release():
			return
		}
		// Bytes arrived during the turn: read again.
	}
}

// drain reads and consumes until nothing is waiting, the queue is full or
// a turn's worth was read (yielded); alive is false when the connection
// ended. c.mu is held.
func (c *wconn) drain(buf []byte) (alive, yielded bool) {
	for turn := 0; turn < readTurn; {
		if c.done.Load() {
			return false, false
		}
		c.qmu.Lock()
		paused := c.paused
		c.qmu.Unlock()
		if paused { // the worker reads it again (process)
			return true, false
		}
		n, err := c.read(buf)
		if err != nil {
			c.end()
			return false, false
		}
		if n == 0 {
			return true, false
		}
		turn += n
		if err := c.consume(buf[:n]); err != nil {
			c.fail(err)
		}
		if c.tls == nil && n < len(buf) {
			// The socket is empty (a short read); bytes arriving from now
			// on are a new edge, which epoll reports. crypto/tls may hold
			// more records (it returns one at a time): it is read until
			// it would block.
			return true, false
		}
	}
	return true, true
}

// read reads what is waiting without blocking (n == 0, nil: nothing).
func (c *wconn) read(buf []byte) (int, error) {
	if c.tls == nil {
		return netpoll.ReadNow(c.raw, buf)
	}
	n, err := c.tls.Read(buf)
	if errors.Is(err, netpoll.ErrWouldBlock) {
		return n, nil
	}
	return n, err
}

// consume handles the whole frames of data (after any partial one kept
// from the previous read) and keeps the rest. c.mu is held.
func (c *wconn) consume(data []byte) error {
	if c.discard {
		return nil
	}
	// grown: data is the kept frame's buffer with the new bytes appended
	// (appending amortises: a message trickling in small pieces is copied
	// a constant number of times, not once per piece).
	grown := len(c.partial) > 0
	if grown {
		data = append(c.partial, data...)
		c.partial = nil
	}
	for len(data) > 0 && !c.done.Load() {
		n, err := c.frame(data)
		if err != nil {
			return err
		}
		if n == 0 { // not whole yet: keep its start (it grows with what arrives)
			if grown {
				c.partial = data
			} else {
				c.partial = append(make([]byte, 0, max(len(data), 512)), data...)
			}
			return nil
		}
		data, grown = data[n:], false // a new frame starts: its bytes are copied once
	}
	return nil
}

// frame handles the frame at the start of b and returns its length (0: not
// whole yet). Client frames are masked, carry no extension bits, and
// control frames are short and whole (RFC 6455 section 5).
func (c *wconn) frame(b []byte) (int, error) {
	if len(b) < 2 {
		return 0, nil
	}
	fin, rsv, op := b[0]&0x80 != 0, b[0]&0x70, b[0]&0x0f
	masked, size, hdr := b[1]&0x80 != 0, uint64(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, nil
		}
		size, hdr = uint64(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		if len(b) < 10 {
			return 0, nil
		}
		size, hdr = binary.BigEndian.Uint64(b[2:]), 10
	}
	control := op >= opClose
	switch {
	case rsv != 0:
		return 0, protocolError("reserved bits set without an extension")
	case !masked:
		return 0, protocolError("client frame not masked")
	case control && (!fin || size > 125):
		return 0, protocolError("control frame fragmented or over 125 bytes")
	case op != opContinuation && op != opText && op != opBinary && !control || op > opPong:
		return 0, protocolError(fmt.Sprintf("unknown opcode %d", op))
	case !control && uint64(len(c.frag))+size > uint64(c.g.cfg.MaxMessage):
		return 0, &closeError{code: websocket.StatusMessageTooBig, reason: fmt.Sprintf("read limited at %d bytes", c.g.cfg.MaxMessage)}
	}
	total := uint64(hdr) + 4 + size
	if uint64(len(b)) < total {
		return 0, nil
	}
	mask := b[hdr : hdr+4]
	payload := make([]byte, size) // a fresh copy: it outlives the read buffer
	for i, x := range b[uint64(hdr)+4 : total] {
		payload[i] = x ^ mask[i&3]
	}
	switch op {
	case opClose:
		return int(total), c.closed(payload)
	case opPing:
		c.pong(payload)
	case opPong:
		c.pingSent.Store(0)
	case opText, opBinary:
		if c.fragType != 0 {
			return 0, protocolError("new message before the last one ended")
		}
		if fin {
			c.enqueue(message{typ: websocket.MessageType(op), data: payload})
		} else { // the message's first frame
			c.fragType, c.frag = op, payload
		}
	case opContinuation:
		if c.fragType == 0 {
			return 0, protocolError("continuation frame without a message")
		}
		c.frag = append(c.frag, payload...)
		if fin {
			c.enqueue(message{typ: websocket.MessageType(c.fragType), data: c.frag})
			c.fragType, c.frag = 0, nil
		}
	}
	return int(total), nil
}

// closed answers the client's close frame (echoing its code) unless the
// gateway began the close, then ends the connection.
func (c *wconn) closed(payload []byte) error {
	if c.closeAt.Load() == 0 {
		c.wmu.Lock()
		_ = c.writeLocked(opClose, payload[:min(len(payload), 2)], c.g.cfg.WriteTimeout)
		c.wmu.Unlock()
	}
	c.end()
	return nil
}

// pong answers a ping with its payload: at once when the socket takes it,
// otherwise from a goroutine that waits for the frame being written (only
// a pong to the latest ping is owed, RFC 6455 section 5.5.3).
func (c *wconn) pong(payload []byte) {
	if c.pongOwed.Swap(&payload) != nil {
		return // the goroutine sends the latest
	}
	switch err := c.writeNow(opPong, payload); {
	case err == nil:
		c.pongOwed.CompareAndSwap(&payload, nil)
		if c.pongOwed.Load() == nil {
			return
		}
	case !errors.Is(err, errBusy) && !errors.Is(err, errFull):
		c.end()
		return
	}
	go func() {
		for p := c.pongOwed.Load(); p != nil; p = c.pongOwed.Load() {
			c.wmu.Lock()
			err := c.writeLocked(opPong, *p, c.g.cfg.WriteTimeout)
			c.wmu.Unlock()
			if err != nil {
				c.end()
				return
			}
			if c.pongOwed.CompareAndSwap(p, nil) {
				return
			}
		}
	}()
}

// enqueue queues a whole data message (the connection goes to the
// workers unless one has it) and pauses reading when the queue is full.
func (c *wconn) enqueue(m message) {
	if c.closeAt.Load() != 0 {
		return // closing: nothing more is ingested
	}
	c.lastData.Store(time.Now().UnixNano())
	c.qmu.Lock()
	c.queue = append(c.queue, m)
	c.paused = len(c.queue) >= maxQueued
	start := !c.running
	c.running = true
	c.qmu.Unlock()
	if start {
		c.g.workers.Push(c)
	}
}

// work handles connections with messages in rounds (round); it ends
// after workerIdle without one.
func (g *Gateway) work() {
	idle := netpoll.StoppedTimer()
	var turns []turn
	for {
		c, ok := g.workers.Take(idle)
		if !ok {
			return
		}
		turns = append(turns[:0], turn{c: c})
		for len(turns) < maxRound {
			if c, ok = g.workers.TryTake(); !ok {
				break
			}
			turns = append(turns, turn{c: c})
		}
		g.round(turns)
		clear(turns) // no connection kept alive by the slice
	}
}

// turn is one connection's part of a round: its acks in order, and which
// of them wait for the round's publish (chunk: the publish their records
// went into).
type turn struct {
	c       *wconn
	acks    []Ack
	pending []pendingAck
	// revoked: the credentials are no longer valid (close after the acks).
	revoked bool
}

type pendingAck struct {
	k, chunk int
	span     trace.Span
}

// round ingests the queued messages of several connections with one bus
// publish (a few when their records pass maxMerge), then writes each
// connection's acks in order: the cost of a durable commit and of a
// publish is paid once for many devices, as the MQTT edge's rounds do.
// Each message is checked as IngestPayload does (credentials again,
// decode, validation); a message refused answers for itself.
func (g *Gateway) round(turns []turn) {
	var recs []*busv1.Record
	var errs []error // per chunk
	publish := func() {
		if len(recs) > 0 {
			errs = append(errs, g.ing.Publish(context.Background(), ingest.ProtocolWS, recs))
			recs = nil // the bus keeps the slice it was given
		}
	}
	for t := range turns {
		tr := &turns[t]
		c := tr.c
		for _, m := range c.take() {
			i := c.index
			c.index++
			ctx, span := startMessage(c.ctx, len(m.data))
			if status, err := c.recheck(ctx); err != nil {
				ack := refusal(i, status, err)
				endMessage(span, ack)
				tr.acks, tr.revoked = append(tr.acks, ack), true
				break // the rest is not ingested: the connection closes
			}
			ack, rs := g.prepare(ctx, c.p, i, m.typ, m.data)
			if rs == nil {
				endMessage(span, ack)
			} else {
				recs = append(recs, rs...)
				tr.pending = append(tr.pending, pendingAck{k: len(tr.acks), chunk: len(errs), span: span})
			}
			tr.acks = append(tr.acks, ack)
			if len(recs) >= maxMerge {
				publish()
			}
		}
	}
	publish()
	for t := range turns {
		tr := &turns[t]
		for _, p := range tr.pending {
			if err := errs[p.chunk]; err != nil {
				tr.acks[p.k] = failed(tr.acks[p.k], err)
			}
			endMessage(p.span, tr.acks[p.k])
		}
		tr.c.acked(tr)
	}
}

// take returns the connection's queued messages; reading goes on if the
// queue had paused it.
func (c *wconn) take() []message {
	c.qmu.Lock()
	msgs := c.queue
	c.queue = nil
	resume := c.paused
	c.paused = false
	c.qmu.Unlock()
	if resume && c.Claim() { // bytes may wait in the socket: no edge will say so
		c.g.readers.Push(c)
	}
	return msgs
}

// acked writes a turn's acks in one write without waiting (a worker serves
// many connections; writeSome): a connection whose socket cannot take them
// (a client that does not read; through TLS, acks over tlsNowMax too) or
// that is writing another frame gets them from a goroutine of its own,
// which waits up to WriteTimeout. Then the connection goes back to the
// workers if messages came meanwhile.
func (c *wconn) acked(tr *turn) {
	var b []byte
	for _, a := range tr.acks {
		j, _ := json.Marshal(a)
		b = appendFrame(b, opText, j)
	}
	revoked := tr.revoked
	c.lastData.Store(time.Now().UnixNano())
	if len(b) == 0 && !revoked {
		c.next()
		return
	}
	locked := false
	if !revoked && c.wmu.TryLock() {
		n, err := c.writeSome(b)
		if err != nil || n == len(b) {
			c.wmu.Unlock()
			if err != nil {
				c.end()
			}
			c.next()
			return
		}
		// Written in part: the rest follows before any other frame (the
		// goroutine takes the lock over).
		b, locked = b[n:], true
	}
	go func() {
		if !locked {
			c.wmu.Lock()
		}
		err := error(net.ErrClosed)
		if !c.done.Load() {
			err = c.writeWithin(b, c.g.cfg.WriteTimeout)
		}
		c.wmu.Unlock()
		switch {
		case revoked:
			c.closeNow(websocket.StatusPolicyViolation, "credentials no longer valid")
			c.qmu.Lock()
			c.queue, c.running = nil, false
			c.qmu.Unlock()
			return
		case err != nil:
			c.end()
		}
		c.next()
	}()
}

// next hands the connection back to the workers if messages are queued,
// or leaves it (running false) until the next one.
func (c *wconn) next() {
	c.qmu.Lock()
	more := len(c.queue) > 0
	c.running = more
	c.qmu.Unlock()
	if more {
		c.g.workers.Push(c)
	}
}

// write writes one frame, waiting up to WriteTimeout: a client that does
// not read is disconnected.
func (c *wconn) write(op byte, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.done.Load() {
		return net.ErrClosed
	}
	return c.writeLocked(op, payload, c.g.cfg.WriteTimeout)
}

// writeLocked writes one unmasked frame in one write. c.wmu is held.
func (c *wconn) writeLocked(op byte, payload []byte, timeout time.Duration) error {
	return c.writeWithin(appendFrame(make([]byte, 0, 10+len(payload)), op, payload), timeout)
}

// writeWithin writes b waiting up to timeout. c.wmu is held. The deadline
// is cleared after it: writeSome's raw writes obey it too.
func (c *wconn) writeWithin(b []byte, timeout time.Duration) error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(timeout))
	_, err := c.Conn.Write(b)
	_ = c.Conn.SetWriteDeadline(time.Time{})
	return err
}

// writeSome writes what the connection takes of b without waiting (c.wmu
// is held): on a plain connection what the socket's buffer takes; through
// TLS, which cannot write part of a record and go on later, all of b when
// it is short and the buffer has room for it (netpoll.Writable), else
// nothing (the write is bounded by tlsNowTimeout should the room run out
// meanwhile: an error, the connection ends).
func (c *wconn) writeSome(b []byte) (int, error) {
	switch {
	case c.done.Load():
		return 0, net.ErrClosed
	case c.tls == nil:
		return netpoll.WriteNow(c.raw, b)
	case len(b) > tlsNowMax || !netpoll.Writable(c.raw):
		return 0, nil
	}
	if err := c.writeWithin(b, tlsNowTimeout); err != nil {
		return 0, err
	}
	return len(b), nil
}

// appendFrame appends a whole server frame (FIN, unmasked).
func appendFrame(b []byte, op byte, payload []byte) []byte {
	b = append(b, 0x80|op)
	switch n := len(payload); {
	case n <= 125:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

var (
	errBusy = errors.New("ws: a frame is being written")
	errFull = errors.New("ws: socket buffer full")
)

// writeNow writes a short frame without waiting (the sweep's pings and
// closes, pongs): errBusy when a frame is being written, errFull when the
// socket's buffer takes none of it (a client that does not read); a frame
// written in part breaks the stream (an error: the caller ends it).
func (c *wconn) writeNow(op byte, payload []byte) error {
	if !c.wmu.TryLock() {
		return errBusy
	}
	defer c.wmu.Unlock()
	f := appendFrame(make([]byte, 0, 2+len(payload)), op, payload)
	switch n, err := c.writeSome(f); {
	case err != nil:
		return err
	case n == 0:
		return errFull
	case n < len(f):
		return errors.New("ws: frame written in part")
	}
	return nil
}

// closeNow sends a close frame with code and reason and waits closeWait
// for the client's (the sweep ends it then); the connection ends at once
// if the frame cannot be written.
func (c *wconn) closeNow(code websocket.StatusCode, reason string) {
	if !c.closeAt.CompareAndSwap(0, time.Now().Add(closeWait).UnixNano()) {
		return
	}
	payload := binary.BigEndian.AppendUint16(nil, uint16(code))
	payload = append(payload, reason[:min(len(reason), 123)]...)
	c.wmu.Lock()
	err := c.writeLocked(opClose, payload, c.g.cfg.WriteTimeout)
	c.wmu.Unlock()
	if err != nil {
		c.end()
	}
}

// fail closes the connection after a frame it cannot read (a protocol
// error, a message too large): a close frame with the code, then the rest
// is drained until the client closes (its frames are not read any more).
// c.mu is held.
func (c *wconn) fail(err error) {
	c.discard, c.partial, c.frag, c.fragType = true, nil, nil, 0
	var ce *closeError
	if !errors.As(err, &ce) {
		c.end()
		return
	}
	c.closeAt.Store(0) // a graceful close under way gives way to the error
	c.closeSoon(ce.code, ce.reason)
}

// end closes the connection once: epoll forgets it, the command session
// ends and the device's stream slot is released.
func (c *wconn) end() {
	c.endOnce.Do(func() {
		c.done.Store(true)
		if token := c.token.Load(); token != 0 {
			c.g.poll.Remove(token)
		}
		c.closeConn() // first: a command being written fails at once
		c.endCommands()
		c.release()
	})
}

// closeConn closes the connection without waiting. Through TLS the
// close_notify alert is sent only when the socket takes it at once and no
// frame is being written (tls.Conn.Close waits up to 5 s to send it);
// otherwise the socket under crypto/tls is closed without it (the
// WebSocket close handshake, when there was one, has said the same).
func (c *wconn) closeConn() {
	if c.tls == nil {
		_ = c.Conn.Close()
		return
	}
	if c.wmu.TryLock() {
		notify := netpoll.Writable(c.raw)
		c.wmu.Unlock()
		if notify {
			_ = c.tls.Close()
			return
		}
	}
	_ = c.nb.Close()
}

// endCommands ends the command session, on a goroutine of its own: end
// may run inside a command's delivery (abort, revoked), which the
// session's Close waits for.
func (c *wconn) endCommands() {
	if stop := c.stopCmds.Swap(nil); stop != nil {
		go (*stop)()
	}
}

// writeText writes a command (commands.go).
func (c *wconn) writeText(_ context.Context, b []byte) error { return c.write(opText, b) }

// abort drops the connection at once (a command not written).
func (c *wconn) abort() { c.end() }

// revoked closes the connection whose credentials are no longer valid.
func (c *wconn) revoked() { c.closeNow(websocket.StatusPolicyViolation, "credentials no longer valid") }

// sweepEvery is how often the sweep checks the connections: a quarter of
// the ping interval and of the idle timeout, half the pong wait, at most
// 5 s (defaults: pings every 30–35 s, a missing pong noticed within
// 10–15 s). Each sweep visits every connection: at 19,000 devices a sweep
// a second was 2.6 % of the server's CPU.
func (g *Gateway) sweepEvery() time.Duration {
	return max(10*time.Millisecond, min(5*time.Second, g.cfg.PingInterval/4, g.cfg.IdleTimeout/4, g.cfg.WriteTimeout/2))
}

// sweep pings the connections every PingInterval, ends those whose pong
// did not come within WriteTimeout, closes those idle for IdleTimeout
// (1008) and ends closing ones the client did not answer, until Close.
func (g *Gateway) sweep() {
	defer close(g.sweepDone)
	t := time.NewTicker(g.sweepEvery())
	defer t.Stop()
	ping := []byte("keepalive")
	for {
		select {
		case <-g.sweepStop:
			return
		case tick := <-t.C:
			now := tick.UnixNano()
			g.poll.Each(func(c *wconn) {
				switch closing, sent := c.closeAt.Load(), c.pingSent.Load(); {
				case closing != 0:
					if now > closing {
						c.end()
					}
				case sent != 0 && now > sent+int64(g.cfg.WriteTimeout):
					c.end() // no pong
				case now > c.lastData.Load()+int64(g.cfg.IdleTimeout):
					c.closeSoon(websocket.StatusPolicyViolation, "idle timeout")
				case sent == 0 && now > c.lastPing.Load()+int64(g.cfg.PingInterval):
					c.pingSent.Store(now) // before the ping: its pong may come at once
					switch err := c.writeNow(opPing, ping); {
					case err == nil:
						c.lastPing.Store(now)
					case errors.Is(err, errBusy) || errors.Is(err, errFull):
						// The next sweep tries again (a writer waits on its
						// own timeout).
						c.pingSent.CompareAndSwap(now, 0)
					default:
						c.end()
					}
				}
			})
		}
	}
}

// closeSoon begins the close handshake without waiting (the sweep, read
// errors): when a frame is being written it is left to the next sweep (or
// the connection ends, when nothing will come back to it).
func (c *wconn) closeSoon(code websocket.StatusCode, reason string) {
	payload := binary.BigEndian.AppendUint16(nil, uint16(code))
	payload = append(payload, reason...)
	switch err := c.writeNow(opClose, payload); {
	case err == nil:
		c.closeAt.Store(time.Now().Add(closeWait).UnixNano())
	case !errors.Is(err, errBusy):
		c.end()
	}
}
