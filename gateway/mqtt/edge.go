package mqtt

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotplatform/iotplatform/internal/netpoll"
)

// Event-driven reads (Linux; `--mqtt-epoll`, on by default).
//
// mochi reads each client on a goroutine of its own (Client.Read) and
// writes on a second one (Client.WriteLoop); at fleet shape, many devices
// each sending once a second, those two parked goroutines' stacks were half
// of the server's memory (docs/BENCHMARKS.md, issue #18). On Linux the
// gateway therefore drives mochi itself: a short-lived goroutine reads CONNECT and attaches the client (attach, mirroring
// mochi's attachClient), then the connection is registered with epoll and
// read only when it has bytes (pconn.handle, on a small pool of reader
// goroutines); each whole packet goes to mochi's packet processing
// (Server.InjectPacket), so publishes, subscriptions, PUBACKs of commands,
// pings and DISCONNECT behave as on mochi's own read loop. Writes stay on
// the connection (PUBACKs and commands are written directly, as before).
// An idle device costs its socket, mochi's client and our session: no
// goroutine.
//
// Differences from mochi's loop (the second is the only one a device can
// see; docs/INGEST.md):
//   - no write loop: mochi queues only deliveries to subscribers there, and
//     the ACL lets a device subscribe to nothing but its command topic,
//     which the gateway writes itself (commands.go);
//   - sessions are never resumed (CONNACK session present is 0, as a
//     client expects when the server keeps no session; the gateway already
//     caps session expiry at 0), and wills are not published (no device may
//     subscribe to another's topics, so a will has no reader);
//   - the keep-alive deadline (1.5 × the client's keep-alive) is checked
//     once a second by sweep instead of by a read deadline.
//
// TLS connections are read the same way when the gateway serves TLS itself
// (Config.TLS): the handshake and CONNECT block on the attaching goroutine,
// then the socket under crypto/tls never waits (netpoll.NonBlocking): a
// read with nothing waiting fails with a temporary error, which crypto/tls
// does not keep, holding a partial record until the rest arrives.

// readerIdle is how long a reader goroutine with nothing to read waits for
// another ready connection before it ends.
const readerIdle = time.Second

// maxReaders bounds the reader goroutines (each with a 16 KiB buffer).
// A reader blocks only while a client's queue is full (back-pressure,
// until a round drains it); more connections with bytes than readers
// wait their turn in order.
const maxReaders = 64

// readTurn bounds what one turn reads from a connection before it yields
// to the others (it is reported again at once if more is waiting).
const readTurn = 64 << 10

// partialStart is the initial room kept for an incomplete packet.
const partialStart = 4 << 10

// errKeepalive ends a client that sent nothing for 1.5 × its keep-alive.
var errKeepalive = errors.New("mqtt keep-alive expired")

// pconn is one device connection read through epoll. It is the net.Conn
// mochi's client holds: closing it (the client stopped by mochi, the
// gateway or the keep-alive sweep) ends the client (end).
type pconn struct {
	net.Conn // as accepted (the listener's wrappers, or *tls.Conn); writes go through it
	raw      syscall.RawConn
	g        *Gateway
	token    uint64 // epoll's key (Poller.Add)
	// State: whether a reader handles the connection (Claim).
	netpoll.State
	// sess is the client's session (set once attached): readings skip
	// the session map (publishDirect).
	sess *session
	// tls is Conn on a TLS connection, read through nb (nil: plain TCP).
	tls *tls.Conn
	nb  *netpoll.NonBlocking

	cl *mochi.Client
	// keepalive in seconds (0: none); expiry is the unix-nano instant the
	// client is cut off without a packet (0: never).
	keepalive uint16
	expiry    atomic.Int64

	closeOnce sync.Once

	// mu is held while the connection is read and its packets processed,
	// and by end: at most one reader at a time, and nothing read after end.
	mu sync.Mutex
	// partial holds the bytes of a packet not yet whole (nil between
	// packets: an idle connection holds no buffer).
	partial []byte
	// attached: CONNECT was accepted (the session exists); registered: in
	// epoll; done: ended.
	attached, registered, done bool
}

// NetConn returns the connection as accepted.
func (c *pconn) NetConn() net.Conn { return c.Conn }

// Close closes the connection and ends the client (on another goroutine:
// mochi closes from inside its own locks, Client.Stop's once among them).
func (c *pconn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		go func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.end(nil)
		}()
	})
	return err
}

func (c *pconn) touch() {
	if c.keepalive > 0 {
		c.expiry.Store(time.Now().Add(time.Duration(c.keepalive+c.keepalive/2) * time.Second).UnixNano())
	}
}

// end detaches the client once, as mochi's attachClient does after its
// read loop: the gateway's OnDisconnect (queued publishes are still
// ingested), then mochi's subscriptions and client entry, unless another
// connection took the client id over. c.mu is held.
func (c *pconn) end(err error) {
	if c.done {
		return
	}
	c.done = true
	g, s := c.g, c.g.srv
	if c.registered {
		g.poll.Remove(c.token)
	}
	if err == nil {
		err = c.cl.StopCause()
	}
	c.cl.Stop(err)
	if c.attached {
		g.OnDisconnect(c.cl, err, true)
		if cur, ok := s.Clients.Get(c.cl.ID); ok && cur == c.cl {
			c.cl.ClearInflights()
			s.UnsubscribeClient(c.cl)
			s.Clients.Delete(c.cl.ID)
		}
		atomic.AddInt64(&s.Info.ClientsConnected, -1)
	}
	c.partial = nil
	s.Listeners.ClientsWg.Done()
}

// read reads what is waiting without blocking (n == 0, nil: nothing).
func (c *pconn) read(buf []byte) (int, error) {
	if c.tls == nil {
		return netpoll.ReadNow(c.raw, buf)
	}
	n, err := c.tls.Read(buf)
	if errors.Is(err, netpoll.ErrWouldBlock) {
		return n, nil
	}
	return n, err
}

// edgeListener is the gateway's mochi listener: TCP connections (TLS ones
// too when the gateway serves TLS) are attached by the gateway and read
// through epoll; the others go to mochi's own loop.
type edgeListener struct {
	id  string
	ln  net.Listener
	g   *Gateway
	log *slog.Logger
	end atomic.Bool
}

func (l *edgeListener) Init(log *slog.Logger) error { l.log = log; return nil }
func (l *edgeListener) ID() string                  { return l.id }
func (l *edgeListener) Address() string             { return l.ln.Addr().String() }
func (l *edgeListener) Protocol() string            { return l.ln.Addr().Network() }

func (l *edgeListener) Serve(establish listeners.EstablishFn) {
	for {
		conn, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.end.Load() {
			conn.Close()
			continue
		}
		var raw syscall.RawConn
		if l.g.poll != nil {
			raw = netpoll.Pollable(conn)
		}
		switch cfg := l.g.cfg.TLS; {
		case raw != nil && cfg != nil:
			nb := netpoll.NewNonBlocking(conn)
			go l.g.attach(l, tls.Server(nb, cfg), raw, nb)
			continue
		case raw != nil:
			go l.g.attach(l, conn, raw, nil)
			continue
		case cfg != nil:
			conn = tls.Server(conn, cfg)
		}
		go func() {
			if err := establish(l.id, conn); err != nil {
				l.log.Debug("mqtt connection ended", "err", err)
			}
		}()
	}
}

// Close stops accepting and disconnects the listener's clients (mochi's
// Server.Close then waits for every client to end).
// Close disconnects the listener's clients as mochi's closeListenerClients
// (closeClients) does, but without its Clients.GetByListener, which takes
// the clients' read lock twice: a client ending at the same moment
// (Clients.Delete waiting for the write lock) deadlocks it.
func (l *edgeListener) Close(listeners.CloseFn) {
	if l.end.CompareAndSwap(false, true) {
		for _, cl := range l.g.srv.Clients.GetAll() {
			if cl.Net.Listener == l.id && !cl.Closed() {
				_ = l.g.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	}
	_ = l.ln.Close()
}

// attach reads CONNECT on the accepting goroutine (bounded by the
// listener's first-read deadline), authenticates and acknowledges it as
// mochi's attachClient does, then hands the connection to epoll.
func (g *Gateway) attach(l *edgeListener, conn net.Conn, raw syscall.RawConn, nb *netpoll.NonBlocking) {
	s := g.srv
	s.Listeners.ClientsWg.Add(1)
	c := &pconn{Conn: conn, raw: raw, g: g, nb: nb}
	c.tls, _ = conn.(*tls.Conn)
	// Without a connection, NewClient allocates no read buffer: mochi
	// never reads this client (packet does), it only writes to Net.Conn.
	c.cl = s.NewClient(nil, l.id, "", false)
	c.cl.Net.Conn, c.cl.Net.Remote = c, conn.RemoteAddr().String()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := g.handshake(l, c); err != nil {
		g.log.Debug("mqtt client not attached", "client", c.cl.ID, "remote", c.cl.Net.Remote, "err", err)
		c.end(err)
		return
	}
	if l.end.Load() { // closing: Close's disconnect may have missed it
		_ = s.DisconnectClient(c.cl, packets.ErrServerShuttingDown)
		c.end(nil)
		return
	}
	if c.nb != nil {
		// What crypto/tls holds already is read now: epoll only tells
		// about bytes still in the socket.
		c.nb.SetNonBlocking()
		if alive, _ := c.drain(make([]byte, 4<<10)); !alive {
			return
		}
	}
	token, err := g.poll.Add(c, c.raw)
	if err != nil {
		c.end(err)
		return
	}
	c.token = token
	c.registered = true
}

func (g *Gateway) handshake(l *edgeListener, c *pconn) error {
	s, cl := g.srv, c.cl
	pk, err := c.readConnect()
	if err != nil {
		return fmt.Errorf("read connect: %w", err)
	}
	cl.ParseConnect(l.id, pk)
	if atomic.LoadInt64(&s.Info.ClientsConnected) >= s.Options.Capabilities.MaximumClients {
		code := packets.ErrServerBusy
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.ErrServerUnavailable
		}
		_ = s.SendConnack(cl, code, false, nil)
		return code
	}
	if code := validateConnect(s, cl, pk); code != packets.CodeSuccess {
		_ = s.SendConnack(cl, code, false, nil)
		return code // [MQTT-3.2.2-7] [MQTT-3.1.4-6]
	}
	if !g.OnConnectAuthenticate(cl, pk) { // [MQTT-3.1.4-2]
		_ = s.SendConnack(cl, packets.ErrBadUsernameOrPassword, false, nil)
		return packets.ErrBadUsernameOrPassword
	}
	c.attached = true
	c.sess = g.session(c.cl)
	atomic.AddInt64(&s.Info.ClientsConnected, 1)
	if existing, ok := s.Clients.Get(cl.ID); ok { // [MQTT-3.1.4-3]: the same device and client id
		_ = s.DisconnectClient(existing, packets.ErrSessionTakenOver)
		s.UnsubscribeClient(existing)
		existing.ClearInflights()
	}
	s.Clients.Add(cl) // [MQTT-4.1.0-1]
	if err := s.SendConnack(cl, packets.CodeSuccess, false, nil); err != nil {
		return fmt.Errorf("ack connection packet: %w", err)
	}
	g.OnSessionEstablished(cl, pk)
	// From here on the keep-alive bounds the client, not the listener's
	// CONNECT deadline.
	if err := c.Conn.SetReadDeadline(time.Time{}); err != nil {
		return fmt.Errorf("clear connect deadline: %w", err)
	}
	c.keepalive = cl.State.Keepalive
	c.touch()
	if len(c.partial) > 0 {
		data := c.partial
		c.partial = nil
		if err := c.consume(data); err != nil {
			return err
		}
	}
	if cl.Closed() {
		return cl.StopCause()
	}
	return nil
}

// readConnect reads the first packet, which must be CONNECT (as mochi's
// readConnectionPacket); bytes the client sent after it are kept for
// consume.
func (c *pconn) readConnect() (packets.Packet, error) {
	var pk packets.Packet
	br := bufio.NewReaderSize(c.Conn, 512)
	b, err := br.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	if pk.FixedHeader.Type != packets.Connect {
		return pk, packets.ErrProtocolViolationRequireFirstConnect // [MQTT-3.1.0-1]
	}
	remaining, n, err := packets.DecodeLength(br)
	if err != nil {
		return pk, err
	}
	if max := c.g.srv.Options.Capabilities.MaximumPacketSize; max > 0 && uint32(remaining+1) > max {
		return pk, packets.ErrPacketTooLarge // before anything is allocated
	}
	body := make([]byte, remaining)
	if _, err := io.ReadFull(br, body); err != nil {
		return pk, err
	}
	atomic.AddInt64(&c.g.srv.Info.BytesReceived, int64(1+n+remaining))
	pk.FixedHeader.Remaining = remaining
	pk.ProtocolVersion = c.cl.Properties.ProtocolVersion
	if err := pk.ConnectDecode(body); err != nil {
		return pk, err
	}
	if n := br.Buffered(); n > 0 {
		rest, _ := br.Peek(n)
		c.partial = append([]byte(nil), rest...)
	}
	return pk, nil
}

// validateConnect is mochi's Server.validateConnect.
func validateConnect(s *mochi.Server, cl *mochi.Client, pk packets.Packet) packets.Code {
	code := pk.ConnectValidate() // [MQTT-3.1.4-1] [MQTT-3.1.4-2]
	if code != packets.CodeSuccess {
		return code
	}
	caps := s.Options.Capabilities
	switch {
	case cl.Properties.ProtocolVersion < 5 && !pk.Connect.Clean && pk.Connect.ClientIdentifier == "":
		return packets.ErrUnspecifiedError
	case cl.Properties.ProtocolVersion < caps.MinimumProtocolVersion:
		return packets.ErrUnsupportedProtocolVersion // [MQTT-3.1.2-2]
	case cl.Properties.Will.Qos > caps.MaximumQos:
		return packets.ErrQosNotSupported // [MQTT-3.2.2-12]
	case cl.Properties.Will.Retain && caps.RetainAvailable == 0x00:
		return packets.ErrRetainNotSupported // [MQTT-3.2.2-13]
	}
	return code
}

// ready hands a claimed connection with bytes to read to the readers.
func (g *Gateway) ready(c *pconn) { g.readers.Push(c) }

// reader reads ready connections; it ends after readerIdle without one.
func (g *Gateway) reader() {
	buf := make([]byte, 16<<10)
	g.readers.Each(func(c *pconn) { c.handle(buf) })
}

// handle reads what the connection holds and processes every whole
// packet in order, until the socket is empty and no event came meanwhile;
// after a turn's worth it hands the connection to the next reader (it
// stays claimed).
func (c *pconn) handle(buf []byte) {
	for {
		c.mu.Lock()
		alive, yielded := !c.done, false
		if alive {
			alive, yielded = c.drain(buf)
		}
		c.mu.Unlock()
		switch {
		case !alive:
			return
		case yielded:
			c.g.ready(c)
			return
		case c.Release():
			return
		}
		// Bytes arrived during the turn: read again.
	}
}

// drain reads and processes until nothing is waiting or a turn's worth
// was read (yielded); alive is false when the client ended. c.mu is held.
func (c *pconn) drain(buf []byte) (alive, yielded bool) {
	for turn := 0; turn < readTurn; {
		n, err := c.read(buf)
		if err != nil {
			c.end(err)
			return false, false
		}
		if n == 0 {
			return true, false
		}
		turn += n
		c.touch()
		if err := c.consume(buf[:n]); err != nil {
			c.end(err)
			return false, false
		}
		if c.cl.Closed() {
			c.end(nil)
			return false, false
		}
		if c.tls == nil && n < len(buf) {
			// The socket is empty (a short read): no read to see EAGAIN;
			// bytes arriving from now on are a new edge, which epoll
			// reports (Claim). crypto/tls may hold more records: it is
			// read until it would block.
			return true, false
		}
	}
	return true, true
}

// consume processes the whole packets of data (after any partial one kept
// from the previous read) and keeps the rest.
func (c *pconn) consume(data []byte) error {
	// grown: data is the kept packet's buffer with the new bytes appended
	// (appending amortises: a packet trickling in small pieces is copied a
	// constant number of times, not once per piece).
	grown := len(c.partial) > 0
	if grown {
		data = append(c.partial, data...)
		c.partial = nil
	}
	maxPacket := c.g.srv.Options.Capabilities.MaximumPacketSize
	for len(data) > 0 {
		var fh packets.FixedHeader
		if err := fh.Decode(data[0]); err != nil {
			return err
		}
		remaining, hdr, err := decodeLength(data[1:])
		if err != nil {
			return err
		}
		if hdr == 0 {
			break // the length is not whole yet
		}
		if maxPacket > 0 && uint32(remaining+1) > maxPacket {
			return packets.ErrPacketTooLarge // [MQTT-3.2.2-15], before the body is read
		}
		fh.Remaining = remaining
		total := 1 + hdr + remaining
		if len(data) < total {
			// Keep the packet's start; the buffer grows with what
			// arrives (up to the packet bound), not with what the header
			// announces: a client announcing 1 MiB and sending a few bytes
			// holds a few bytes.
			if grown {
				c.partial = data
			} else {
				c.partial = append(make([]byte, 0, min(total, max(len(data), partialStart))), data...)
			}
			return nil
		}
		if err := c.packet(fh, data[1+hdr:total]); err != nil {
			return err
		}
		atomic.AddInt64(&c.g.srv.Info.BytesReceived, int64(total))
		data, grown = data[total:], false // a new packet starts: its bytes are copied once
		if c.cl.Closed() {
			return nil
		}
	}
	if len(data) > 0 {
		c.partial = append(make([]byte, 0, 8), data...)
	}
	return nil
}

// decodeLength decodes MQTT's variable byte integer at the start of b: the
// value and its length in bytes (0: not whole yet).
func decodeLength(b []byte) (value, n int, err error) {
	mult := 1
	for i := 0; i < 4; i++ {
		if i >= len(b) {
			return 0, 0, nil
		}
		value += int(b[i]&0x7f) * mult
		if b[i]&0x80 == 0 {
			return value, i + 1, nil
		}
		mult *= 128
	}
	return 0, 0, packets.ErrMalformedVariableByteInteger
}

// packet decodes one packet (as mochi's Client.ReadPacket) and processes it
// (as mochi's receivePacket).
func (c *pconn) packet(fh packets.FixedHeader, body []byte) error {
	cl, s := c.cl, c.g.srv
	// A fresh copy: the payload outlives the read buffer (queued publishes).
	px := append([]byte(nil), body...)
	pk := packets.Packet{ProtocolVersion: cl.Properties.ProtocolVersion, FixedHeader: fh}
	var err error
	switch fh.Type {
	case packets.Publish:
		err = pk.PublishDecode(px)
	case packets.Puback:
		err = pk.PubackDecode(px)
	case packets.Pingreq:
	case packets.Subscribe:
		err = pk.SubscribeDecode(px)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(px)
	case packets.Disconnect:
		err = pk.DisconnectDecode(px)
	case packets.Connect:
		err = pk.ConnectDecode(px)
	case packets.Pubrec:
		err = pk.PubrecDecode(px)
	case packets.Pubrel:
		err = pk.PubrelDecode(px)
	case packets.Pubcomp:
		err = pk.PubcompDecode(px)
	case packets.Auth:
		err = pk.AuthDecode(px)
	default: // server-to-client packets
		err = fmt.Errorf("invalid packet type; %v", fh.Type)
	}
	if err != nil {
		return err
	}
	if pk, err = c.g.OnPacketRead(cl, pk); err != nil {
		return err
	}
	if fh.Type == packets.Publish && c.g.publishDirect(c, pk) {
		return nil
	}
	if err := s.InjectPacket(cl, pk); err != nil {
		if code, ok := err.(packets.Code); ok && cl.Properties.ProtocolVersion == 5 && code.Code >= packets.ErrUnspecifiedError.Code {
			_ = s.DisconnectClient(cl, code)
		}
		c.g.log.Warn("mqtt packet refused", "client", cl.ID, "type", fh.Type, "err", err)
		return err
	}
	return nil
}

// publishDirect ingests a valid publish to the client's own topic (a
// reading) without mochi's packet processing: for such a publish mochi
// checks it, asks the hooks (the topic ACL, then OnPublish, which takes it
// over) and does nothing else, but pays for every hook lookup and a copy
// of the packet per hook call (a topic alias is resolved already:
// OnPacketRead). Anything else (another topic, an invalid packet) goes
// through mochi (false).
func (g *Gateway) publishDirect(c *pconn, pk packets.Packet) bool {
	if pk.PublishValidate(g.srv.Options.Capabilities.TopicAliasMaximum) != packets.CodeSuccess {
		return false
	}
	if s := c.sess; s == nil || pk.TopicName != s.topic {
		return false
	}
	_, _ = g.publish(c.cl, c.sess, pk)
	atomic.AddInt64(&g.srv.Info.PacketsReceived, 1)
	atomic.AddInt64(&g.srv.Info.MessagesReceived, 1)
	return true
}

// sweep ends clients silent for 1.5 × their keep-alive, once a second,
// until stop is closed.
func (g *Gateway) sweep(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			g.poll.Each(func(c *pconn) {
				if e := c.expiry.Load(); e != 0 && now.UnixNano() > e {
					c.cl.Stop(errKeepalive) // closes c: end follows
				}
			})
		}
	}
}
