// Package mqtt is the MQTT ingest gateway on mochi-mqtt (MQTT 3.1, 3.1.1
// and 5): username `JWT` and the device token as password at CONNECT (or,
// over TLS with mutual TLS enabled, a device client certificate), publish
// to the topic `<device_id>`, QoS 0 or 1. A QoS 1 PUBACK is written only once
// the readings are durable: OnPublish queues the publish to the client's
// queue and hands the client to a bounded pool of workers; a worker's
// round takes the queued publishes of every client ready, validates them,
// makes them durable with one bus publish and then acks each client's in
// order. The bus merges concurrent rounds into one durable commit (the
// write-ahead log's group commit).
package mqtt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/limits"
	"github.com/iotplatform/iotplatform/internal/netpoll"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// Ingester is what the gateway needs from the ingest path (ingest.Service):
// validation and publishing are separate so queued publishes of a client
// can be merged into one durable bus publish.
type Ingester interface {
	DecodePayload(p ingest.Protocol, f ingest.Format, payload []byte) ([]ingest.Reading, error)
	Validate(ctx context.Context, device int64, p ingest.Protocol, rs []ingest.Reading) ([]*busv1.Record, error)
	Publish(ctx context.Context, p ingest.Protocol, recs []*busv1.Record) error
	DeadLetter(ctx context.Context, device int64, p ingest.Protocol, payload []byte, reason error) error
}

// Config tunes the gateway.
type Config struct {
	// QueueSize bounds the publishes a client may have waiting for
	// durability; a full queue stops reading from that client (default 256).
	// The queue holds only what is waiting: an idle client holds none.
	QueueSize int
	// OutboundQueue bounds the packets mochi queues for writing to one
	// client (its MaximumClientWritesPending, allocated per connection;
	// default 16: PUBACKs and commands are written directly, so this queue
	// only serves mochi's own deliveries, which the ACL does not allow).
	OutboundQueue int
	// ReadBuffer is the size of each connection's read buffer in bytes
	// (default 512; a packet larger than the buffer is still read whole).
	ReadBuffer int
	// MaxMerge bounds the records merged into one bus publish (default 5000).
	MaxMerge int
	// Workers bounds the goroutines that check publishes, publish them to
	// the bus and write their PUBACKs (default 8). Each takes the
	// publishes of every client ready at that moment into one bus
	// publish, so a few suffice for any number of clients.
	Workers int
	// MaxPacket bounds every MQTT packet, CONNECT included, in bytes
	// (default 1 MiB); larger ones close the connection before they are read.
	MaxPacket int
	// Streams caps the connections one device may hold (shared with its
	// other streams; nil: unlimited). Over the cap CONNECT is refused.
	Streams *limits.Streams
	// GoroutinePerConnection reads every client on mochi's own loop (two
	// goroutines per connection) instead of through epoll (edge.go; Linux).
	GoroutinePerConnection bool
	// TLS, when set, makes the gateway serve TLS on the listener Serve is
	// given (a plain TCP one), so that TLS clients are read through epoll
	// too. (Connections of a listener that is already TLS go to mochi's
	// own loop.)
	TLS *tls.Config
}

// Gateway is the MQTT server.
type Gateway struct {
	mochi.HookBase
	log  *slog.Logger
	auth authn.Authenticator
	ing  Ingester
	cfg  Config
	srv  *mochi.Server

	sessions sync.Map // *mochi.Client → *session

	// workers ingest the sessions with publishes queued, in rounds (at
	// most Workers goroutines; schedule, take, round).
	workers *netpoll.Pool[*session]

	// cmds delivers commands (nil: subscriptions are refused); commands.go.
	cmds        Commands
	cmdSessions sync.Map // *mochi.Client → *cmdSession
	// cmdWriteTimeout bounds writing one command (commandWriteTimeout).
	cmdWriteTimeout time.Duration

	// poll reports the epoll-read connections with bytes waiting (nil:
	// mochi reads every client); readers read them (edge.go).
	poll    *netpoll.Poller[*pconn]
	readers *netpoll.Pool[*pconn]

	deadLetters prometheus.Counter
	denied      prometheus.Counter
}

// v3ConnackCodes makes mochi answer MQTT 3.x clients with MQTT 3.1.1
// CONNACK return codes where it would send an MQTT 5 reason code (0x82
// "protocol violation" is not a 3.1.1 code): a bad protocol name or level
// is 0x01 (unacceptable protocol version), credential flag mismatches
// (password flag with an empty password, ...) are 0x04 (bad user name or
// password). mochi keeps this table in a package variable.
var v3ConnackCodes sync.Once

func mapV3ConnackCodes() {
	v3ConnackCodes.Do(func() {
		for _, c := range []packets.Code{packets.ErrProtocolViolationProtocolName, packets.ErrProtocolViolationProtocolVersion} {
			packets.V5CodesToV3[c] = packets.Err3UnsupportedProtocolVersion
		}
		for _, c := range []packets.Code{packets.ErrProtocolViolationFlagNoPassword, packets.ErrProtocolViolationPasswordNoFlag,
			packets.ErrProtocolViolationUsernameNoFlag, packets.ErrProtocolViolationPasswordTooLong, packets.ErrProtocolViolationUsernameTooLong} {
			packets.V5CodesToV3[c] = packets.ErrMalformedUsernameOrPassword
		}
	})
}

// New returns the gateway; reg registers its metrics (nil: unregistered).
func New(log *slog.Logger, auth authn.Authenticator, ing Ingester, cfg Config, reg prometheus.Registerer) (*Gateway, error) {
	mapV3ConnackCodes()
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = 256
	}
	if cfg.MaxMerge <= 0 {
		cfg.MaxMerge = 5000
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 8
	}
	if cfg.MaxPacket <= 0 {
		cfg.MaxPacket = 1 << 20
	}
	if cfg.OutboundQueue <= 0 {
		cfg.OutboundQueue = 16
	}
	if cfg.ReadBuffer <= 0 {
		cfg.ReadBuffer = 512
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacket)
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.WildcardSubAvailable = 1 // <device_id>/commands/# (commands.go)
	caps.SharedSubAvailable = 0
	caps.MaximumSessionExpiryInterval = 0
	caps.MaximumClientWritesPending = int32(cfg.OutboundQueue)
	g := &Gateway{log: log, auth: auth, ing: ing, cfg: cfg, cmdWriteTimeout: commandWriteTimeout,
		srv: mochi.New(&mochi.Options{Capabilities: caps, Logger: log.With("component", "mochi"),
			ClientNetReadBufferSize: cfg.ReadBuffer, ClientNetWriteBufferSize: cfg.ReadBuffer}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "iot_mqtt_invalid_payloads_total",
			Help: "Invalid MQTT payloads (3.x: dead-lettered; 5: refused with a PUBACK reason code)."}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{Name: "iot_mqtt_acl_denied_total",
			Help: "Publishes or subscriptions refused by the topic ACL."}),
	}
	g.workers = netpoll.NewPool[*session](cfg.Workers, workerIdle, g.work)
	g.readers = netpoll.NewPool[*pconn](maxReaders, readerIdle, g.reader)
	if reg != nil {
		reg.MustRegister(g.deadLetters, g.denied)
	}
	if err := g.srv.AddHook(g, nil); err != nil {
		return nil, fmt.Errorf("add mqtt hook: %w", err)
	}
	return g, nil
}

// Serve accepts MQTT connections on ln until ctx ends.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener) error {
	sl := &syncListener{Listener: ln}
	stopSweep := make(chan struct{})
	if !g.cfg.GoroutinePerConnection {
		p, err := netpoll.NewPoller[*pconn]()
		if err != nil {
			g.log.Warn("mqtt clients read by one goroutine each: no epoll", "err", err)
		} else {
			g.poll = p
			go p.Wait(g.ready)
			go g.sweep(stopSweep)
		}
	}
	if err := g.srv.AddListener(&edgeListener{id: "mqtt", ln: sl, g: g}); err != nil {
		return fmt.Errorf("add mqtt listener: %w", err)
	}
	if err := g.srv.Serve(); err != nil {
		return fmt.Errorf("serve mqtt: %w", err)
	}
	<-ctx.Done()
	sl.quiesce()         // orders every connection closed so far before Close (syncListener)
	err := g.srv.Close() // every client ended (mochi waits for them)
	if g.poll != nil {
		close(stopSweep)
		g.poll.Close()
	}
	if err != nil {
		return fmt.Errorf("close mqtt: %w", err)
	}
	return nil
}

// syncListener hands mochi connections whose Close takes mu, which Serve
// also takes before closing the server: a connection mochi refused and
// closed (an oversized CONNECT, say) never joins mochi's client list, so
// without this nothing orders mochi's reads while establishing it before
// Server.Close's writes (the race detector reports it).
type syncListener struct {
	net.Listener
	mu      sync.Mutex
	closing bool // set by quiesce: connections accepted later are closed at once
}

func (l *syncListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		closing := l.closing
		l.mu.Unlock()
		if !closing {
			return &syncConn{Conn: c, mu: &l.mu}, nil
		}
		c.Close()
	}
}

// quiesce takes mu after every connection closed so far and refuses new ones.
func (l *syncListener) quiesce() {
	l.mu.Lock()
	l.closing = true
	l.mu.Unlock()
}

type syncConn struct {
	net.Conn
	mu *sync.Mutex
}

// netConn is the client's connection as accepted (a *tls.Conn on a TLS
// listener), without the gateway's wrappers (syncConn, pconn).
func netConn(cl *mochi.Client) net.Conn {
	c := cl.Net.Conn
	for {
		switch x := c.(type) {
		case *syncConn:
			c = x.Conn
		case *pconn:
			c = x.Conn
		default:
			return c
		}
	}
}

// NetConn returns the connection as accepted (pollable unwraps it).
func (c *syncConn) NetConn() net.Conn { return c.Conn }

func (c *syncConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Close()
}

// ID implements mochi.Hook.
func (g *Gateway) ID() string { return "iotplatform-ingest" }

// Provides implements mochi.Hook.
func (g *Gateway) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPacketRead, mochi.OnPublish, mochi.OnDisconnect,
		mochi.OnSessionEstablished, mochi.OnSubscribed, mochi.OnQosComplete}, []byte{b})
}

// OnPacketRead resolves MQTT 5 topic aliases and refuses QoS 2 publishes:
// the server offers QoS 0 and 1 only
// (MQTT 5 clients are told so in CONNACK), and silently downgrading would
// answer a 3.x client's QoS 2 with a PUBACK it never expects.
func (g *Gateway) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Type == packets.Publish && pk.Properties.TopicAliasFlag && pk.Properties.TopicAlias > 0 &&
		pk.Properties.TopicAlias <= g.srv.Options.Capabilities.TopicAliasMaximum {
		// MQTT 5 topic alias: resolved here, as mochi would only after its
		// topic ACL check, which then refuses a publish carrying the alias
		// alone (0x87). An alias over the maximum is refused by mochi.
		pk.TopicName = cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, pk.TopicName)
	}
	if pk.FixedHeader.Type == packets.Publish && pk.FixedHeader.Qos > 1 {
		g.denied.Inc()
		g.log.Info("mqtt QoS 2 publish refused", "client", cl.ID)
		_ = g.srv.DisconnectClient(cl, packets.ErrQosNotSupported)
		return pk, packets.ErrRejectPacket
	}
	return pk, nil
}

type session struct {
	device int64
	topic  string
	// recheck re-verifies the credentials of CONNECT (token or certificate).
	recheck func(ctx context.Context) error
	v5      bool
	cl      *mochi.Client

	// release gives back the device's stream (per-caller cap).
	release func()
	// ctx lives as long as the session's publishes: a disconnect does not
	// cancel it while publishes the server fully received are still being
	// ingested; a bus failure cancels it.
	ctx    context.Context
	cancel context.CancelFunc

	mu sync.Mutex
	// room is signalled when the queue shrinks or the session failed.
	room sync.Cond
	// q holds the publishes waiting for durability, in order (nil when
	// empty: an idle client keeps no queue).
	q []job
	// working: the session is queued for a round or in one (at most one at a time, so acks
	// keep the order of the publishes).
	working bool
	// gone: the client disconnected; what q holds is still ingested.
	gone bool
	// failed: a bus failure (or a refusal) ended the session; nothing more is queued.
	failed bool
}

func (s *session) disconnected() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gone
}

// enqueue appends j to the client's queue and hands the session to the
// workers when it had nothing queued; a full queue blocks the caller (the
// connection's reader: back-pressure). It reports false when the session
// failed (j not queued).
func (g *Gateway) enqueue(s *session, j job) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.q) >= g.cfg.QueueSize && !s.failed {
		s.room.Wait()
	}
	if s.failed {
		return false
	}
	s.q = append(s.q, j)
	if !s.working {
		s.working = true
		g.schedule(s)
	}
	return true
}

// workerIdle is how long a worker with nothing to do waits for a session
// with publishes before it ends.
const workerIdle = 250 * time.Millisecond

// schedule hands s (queue not empty, working set) to the workers.
func (g *Gateway) schedule(s *session) { g.workers.Push(s) }

// part is one session's share of a round: the publishes taken from its
// queue; batch[:n] are valid and go into the round's bus publish; stop,
// when set, disconnects the client after them (prepare refused
// batch[n]); batch[n:] otherwise go through process after the round.
type part struct {
	s     *session
	batch []job
	n     int
	stop  *packets.Code
	err   error
}

// take moves the next sessions into parts, up to MaxMerge publishes in all
// (at least one session), waiting up to workerIdle for the first; false
// when the worker should end.
func (g *Gateway) take(parts []part, idle *time.Timer) ([]part, bool) {
	s, ok := g.workers.Take(idle)
	for n := 0; ok; s, ok = g.workers.TryTake() {
		batch := g.next(s)
		parts = append(parts, part{s: s, batch: batch})
		if n += len(batch); n >= g.cfg.MaxMerge {
			break
		}
	}
	return parts, len(parts) > 0
}

// next takes the session's queued publishes (consecutive ones up to
// MaxMerge records) for a round; the session stays working.
func (g *Gateway) next(s *session) []job {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.q) == 0 { // not expected (scheduled with publishes); the round then ends its turn
		return nil
	}
	k, n := 1, len(s.q[0].recs)
	for k < len(s.q) && n < g.cfg.MaxMerge {
		n += len(s.q[k].recs)
		k++
	}
	batch := s.q[:k:k]
	if s.q = s.q[k:]; len(s.q) == 0 {
		s.q = nil
	}
	s.room.Broadcast()
	return batch
}

// done ends a session's turn after a round: back on the queued list when
// publishes were queued meanwhile, else idle (and its context ends once
// the client is gone).
func (g *Gateway) done(s *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed {
		return
	}
	if len(s.q) > 0 {
		g.schedule(s)
		return
	}
	s.working = false
	if s.gone {
		s.cancel()
	}
}

// fail stops the session after a bus failure: the queued publishes are
// dropped unacknowledged (a QoS 1 client resends them) and a blocked
// enqueue returns.
func (s *session) fail(err error) {
	s.mu.Lock()
	for _, j := range s.q {
		endSpan(j.span, err)
	}
	s.q, s.failed, s.working = nil, true, false
	s.room.Broadcast()
	s.mu.Unlock()
	s.cancel()
}

type job struct {
	qos byte
	pid uint16
	// payload is still to be checked (prepare) when raw is set; ctx is
	// the publish's trace context.
	raw     bool
	payload []byte
	ctx     context.Context
	recs    []*busv1.Record
	// refused (MQTT 5): answer with this reason code.
	code *packets.Code
	// dead (MQTT 3.x): dead-letter payload with reason, then ack.
	dead   []byte
	reason error
	// span is the publish's trace span (a no-op span when not traced),
	// ended once the publish is acknowledged or refused.
	span pubSpan
}

// OnConnectAuthenticate accepts username `JWT` with a device token, or
// (any other username) a device client certificate on a TLS listener with
// mutual TLS enabled (authn.AuthenticateDevice).
func (g *Gateway) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	var creds authn.Credentials
	if string(pk.Connect.Username) == "JWT" {
		creds.Token = string(pk.Connect.Password)
	} else if tc, ok := netConn(cl).(*tls.Conn); ok {
		cs := tc.ConnectionState()
		creds.Certificates = authn.PeerCertificates(&cs)
	}
	if creds.Token == "" && len(creds.Certificates) == 0 {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := authn.AuthenticateDevice(ctx, g.auth, creds)
	if err != nil {
		g.log.Info("mqtt connect refused", "client", cl.ID, "err", err)
		return false
	}
	recheck := func(ctx context.Context) error {
		_, err := authn.AuthenticateDevice(ctx, g.auth, creds)
		return err
	}
	release, ok := g.cfg.Streams.Acquire(limits.Caller(string(p.Kind), p.ID), "mqtt")
	if !ok {
		g.log.Info("mqtt connect refused: too many open streams", "device_id", p.ID, "client", cl.ID)
		return false
	}
	// Client ids are scoped by device: another device reusing this id must
	// not take this session over (MQTT's takeover is by client id).
	cl.ID = strconv.FormatInt(p.ID, 10) + "/" + cl.ID
	s := &session{device: p.ID, topic: strconv.FormatInt(p.ID, 10), recheck: recheck,
		v5: pk.ProtocolVersion == 5, cl: cl, release: release}
	s.room.L = &s.mu
	s.ctx, s.cancel = context.WithCancel(context.Background())
	g.sessions.Store(cl, s)
	return true
}

// OnACLCheck lets a device publish only to its own topic and, with
// commands enabled, subscribe to its command topic and answer there
// (commandACL).
func (g *Gateway) OnACLCheck(cl *mochi.Client, topic string, write bool) bool {
	s := g.session(cl)
	if write && s != nil && topic == s.topic {
		return true
	}
	if g.commandACL(s, topic, write) {
		return true
	}
	g.denied.Inc()
	return false
}

// OnDisconnect lets the workers end the session once they ingested every
// publish already received: a QoS 0 publish followed at once by DISCONNECT
// (mosquitto_pub -q 0, mqtt.js defaults) is stored like any other. Its
// acks can no longer be written; a QoS 1 client resends those, which the
// reading identity makes harmless. mochi calls this after the client's read
// loop ended, so no OnPublish of this client runs concurrently.
func (g *Gateway) OnDisconnect(cl *mochi.Client, _ error, _ bool) {
	if v, ok := g.sessions.LoadAndDelete(cl); ok {
		s := v.(*session)
		g.detachCommands(cl)
		s.release()
		s.mu.Lock()
		s.gone = true
		idle := !s.working // else done cancels once the queue is drained
		s.mu.Unlock()
		if idle {
			s.cancel()
		}
	}
}

func (g *Gateway) session(cl *mochi.Client) *session {
	v, ok := g.sessions.Load(cl)
	if !ok {
		return nil
	}
	return v.(*session)
}

// OnPublish queues a reading publish for the workers, which check it
// (prepare) and ack it once durable; mochi itself never acks
// (ErrRejectPacket). The reader does no more than queue: the credential
// re-check, decoding and validation (registry lookups) run in a worker's
// round.
func (g *Gateway) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	return g.publish(cl, g.session(cl), pk)
}

// publish is OnPublish for the client's session s (nil: none).
func (g *Gateway) publish(cl *mochi.Client, s *session, pk packets.Packet) (packets.Packet, error) {
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	ctx, span := startPublish(s, pk)
	if g.cmds != nil {
		if pk.TopicName != s.topic {
			if err := s.recheck(ctx); err != nil { // rotation/revocation, cached
				g.log.InfoContext(ctx, "mqtt credentials no longer valid", "device_id", s.device, "err", err)
				endSpan(span, err)
				_ = g.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
				return pk, packets.ErrRejectPacket
			}
			endSpan(span, nil)
			return g.commandPublish(cl, s, pk)
		}
		g.cmds.Seen(s.device)
	}
	j := job{qos: pk.FixedHeader.Qos, pid: pk.PacketID, raw: true, payload: pk.Payload, ctx: ctx, span: span}
	if !g.enqueue(s, j) { // the session ended after a bus failure
		endSpan(span, s.ctx.Err())
	}
	return pk, packets.ErrRejectPacket
}

// errStopped ends a session whose client the gateway disconnected on purpose.
var errStopped = errors.New("mqtt client disconnected by the gateway")

// prepare checks a queued publish: the credentials of CONNECT again
// (rotation/revocation, cached), then the payload, filling j.recs (valid),
// j.code (MQTT 5 refusal) or j.dead (MQTT 3.x dead letter). It returns a
// reason to disconnect the client instead (the publish is not acked).
func (g *Gateway) prepare(s *session, j *job) (disconnect packets.Code, err error) {
	ctx, payload := j.ctx, j.payload
	j.raw, j.payload, j.ctx = false, nil, nil
	if err := s.recheck(ctx); err != nil {
		g.log.InfoContext(ctx, "mqtt credentials no longer valid", "device_id", s.device, "err", err)
		return packets.ErrNotAuthorized, err
	}
	rs, err := g.ing.DecodePayload(ingest.ProtocolMQTT, ingest.FormatAny, payload)
	if err == nil {
		j.recs, err = g.ing.Validate(ctx, s.device, ingest.ProtocolMQTT, rs)
	}
	if err == nil {
		return packets.Code{}, nil
	}
	var be *ingest.BatchError
	if !errors.As(err, &be) { // registry trouble: refuse like an unavailable bus
		g.log.WarnContext(ctx, "mqtt publish refused", "device_id", s.device, "err", err)
		return packets.ErrServerUnavailable, err
	}
	if be.Class == ingest.ClassRateLimited && (!s.v5 || j.qos == 0) {
		// Over the device's rate limit and no PUBACK to carry the
		// refusal (MQTT 3.x, or QoS 0): disconnect — MQTT 5 with
		// reason 0x96 — rather than drop silently. A QoS 1 client
		// resends the unacknowledged publish after reconnecting.
		g.log.InfoContext(ctx, "mqtt publish over the device's rate limit, disconnecting", "device_id", s.device, "qos", j.qos)
		return packets.ErrMessageRateTooHigh, err
	}
	if be.Class != ingest.ClassRateLimited {
		g.deadLetters.Inc()
	}
	if s.v5 {
		code := reasonCode(be)
		j.code = &code
		j.reason = err
	} else {
		j.dead, j.reason = payload, err
	}
	return packets.Code{}, nil
}

func reasonCode(be *ingest.BatchError) packets.Code {
	switch be.Class {
	case ingest.ClassRejected:
		return packets.ErrImplementationSpecificError
	case ingest.ClassTooLarge:
		return packets.ErrPacketTooLarge
	case ingest.ClassRateLimited:
		return packets.ErrMessageRateTooHigh // 0x96
	}
	return packets.ErrPayloadFormatInvalid
}

// work runs rounds while sessions are ready and ends after workerIdle
// without one.
func (g *Gateway) work() {
	idle := netpoll.StoppedTimer()
	var parts []part
	for {
		var ok bool
		if parts, ok = g.take(parts[:0], idle); !ok {
			return
		}
		g.round(parts)
		clear(parts)
	}
}

// round ingests the publishes taken from several sessions: each is
// checked (prepare), the valid ones of all sessions go into one bus
// publish (chunks of MaxMerge records), and once that is durable each
// session's PUBACKs are written in order. A session's publishes after one
// that is refused or dead-lettered follow on the per-session path
// (process), so its acks keep their order.
func (g *Gateway) round(parts []part) {
	var recs []*busv1.Record
	var err error
	for i := range parts {
		p := &parts[i]
		p.n = len(p.batch)
		for k := range p.batch {
			j := &p.batch[k]
			if j.raw {
				if code, perr := g.prepare(p.s, j); perr != nil {
					p.n, p.stop, p.err = k, &code, perr
					break
				}
			}
			if j.recs == nil {
				p.n = k
				break
			}
			recs = append(recs, j.recs...)
		}
		if len(recs) >= g.cfg.MaxMerge && err == nil {
			err = g.ing.Publish(context.Background(), ingest.ProtocolMQTT, recs)
			recs = nil // the bus keeps the slice it was given
		}
	}
	if err == nil && len(recs) > 0 {
		err = g.ing.Publish(context.Background(), ingest.ProtocolMQTT, recs)
	}
	if err != nil {
		g.roundFailed(parts, err)
		return
	}
	for i := range parts {
		p := &parts[i]
		s := p.s
		g.acked(s, g.ackAll(s, p.batch[:p.n]))
		for _, j := range p.batch[:p.n] {
			endSpan(j.span, nil)
		}
		rest := p.batch[p.n:]
		switch {
		case p.stop != nil:
			endSpan(rest[0].span, p.err)
			_ = g.srv.DisconnectClient(s.cl, *p.stop)
			g.ended(s, rest[1:], errStopped)
			continue
		case len(rest) > 0:
			if err := g.process(s, rest); err != nil {
				g.ended(s, rest, err)
				continue
			}
			for _, j := range rest {
				endSpan(j.span, nil)
			}
		}
		g.done(s)
	}
}

// ended stops a session whose publishes in rest were not all ingested
// (err: why): a client the gateway disconnected on purpose (errStopped)
// just ends; after a bus failure the client is disconnected, so a QoS 1
// client resends what was not acked.
func (g *Gateway) ended(s *session, rest []job, err error) {
	for _, j := range rest {
		endSpan(j.span, err)
	}
	s.fail(err)
	if errors.Is(err, errStopped) {
		return
	}
	if s.disconnected() {
		g.log.Warn("mqtt publishes of a disconnected client not durable; unacknowledged, dropped", "device_id", s.device, "err", err)
		return
	}
	g.log.Warn("mqtt publish not durable, disconnecting", "device_id", s.device, "err", err)
	g.unavailable(s)
}

// roundFailed ends every session of a round whose bus publish failed:
// nothing of it was acknowledged, and each client still connected is
// disconnected (one log line for the round).
func (g *Gateway) roundFailed(parts []part, err error) {
	dropped := 0
	for i := range parts {
		p := &parts[i]
		for _, j := range p.batch {
			endSpan(j.span, err)
		}
		p.s.fail(err)
		if !p.s.disconnected() {
			g.unavailable(p.s)
		}
		dropped += len(p.batch)
	}
	g.log.Warn("mqtt publishes not durable; unacknowledged, clients disconnected", "clients", len(parts), "publishes", dropped, "err", err)
}

// unavailable disconnects a client after a bus failure (MQTT 5: server
// unavailable).
func (g *Gateway) unavailable(s *session) {
	code := packets.ErrServerUnavailable
	if !s.v5 {
		code = packets.ErrUnspecifiedError
	}
	_ = g.srv.DisconnectClient(s.cl, code)
}

func (g *Gateway) process(s *session, batch []job) error {
	start := 0
	flush := func(end int) error {
		if start == end {
			return nil
		}
		var recs []*busv1.Record
		if end-start == 1 {
			recs = batch[start].recs
		} else {
			for _, j := range batch[start:end] {
				recs = append(recs, j.recs...)
			}
		}
		if err := g.ing.Publish(s.ctx, ingest.ProtocolMQTT, recs); err != nil {
			return err
		}
		g.acked(s, g.ackAll(s, batch[start:end]))
		return nil
	}
	for i := range batch {
		if batch[i].raw {
			if code, err := g.prepare(s, &batch[i]); err != nil {
				if ferr := flush(i); ferr != nil {
					return ferr
				}
				endSpan(batch[i].span, err)
				_ = g.srv.DisconnectClient(s.cl, code)
				return errStopped
			}
		}
		j := batch[i]
		if j.recs != nil {
			continue
		}
		if err := flush(i); err != nil {
			return err
		}
		start = i + 1
		switch {
		case j.code != nil:
			g.acked(s, g.ack(s, j, *j.code))
		default:
			if err := g.ing.DeadLetter(s.ctx, s.device, ingest.ProtocolMQTT, j.dead, j.reason); err != nil {
				return err
			}
			g.acked(s, g.ackAll(s, []job{j}))
		}
	}
	return flush(len(batch))
}

// acked logs an ack that could not be written: the connection is going
// away (its read loop ends and the client resends QoS 1 publishes), and the
// publishes queued behind it are still ingested.
func (g *Gateway) acked(s *session, err error) {
	if err != nil {
		g.log.Info("mqtt puback not written", "device_id", s.device, "err", err)
	}
}

func (g *Gateway) ack(s *session, j job, code packets.Code) error {
	if j.qos == 0 || s.disconnected() {
		return nil // nobody to tell; a QoS 1 client resends
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: j.pid, ReasonCode: code.Code}
	if code.Code >= packets.ErrUnspecifiedError.Code && j.reason != nil {
		pk.Properties.ReasonString = truncate(j.reason.Error(), 200)
	}
	if err := s.cl.WritePacket(pk); err != nil {
		return fmt.Errorf("write puback: %w", err)
	}
	return nil
}

// ackAll writes the success PUBACKs of jobs with one write call (one
// syscall for a merged batch), under the client's write lock like mochi's
// own WritePacket. A success PUBACK is 4 bytes in MQTT 3.x and 5 alike
// (MQTT 5 omits reason code 0x00 with no properties, [MQTT-3.4.2.1]), so
// it is written as such instead of through mochi's encoder (a 1,000-byte
// packet value copied through its hooks per reading).
func (g *Gateway) ackAll(s *session, jobs []job) error {
	buf := make([]byte, 0, 4*len(jobs))
	for _, j := range jobs {
		if j.qos == 0 {
			continue
		}
		buf = append(buf, packets.Puback<<4, 2, byte(j.pid>>8), byte(j.pid))
	}
	if len(buf) == 0 || s.disconnected() {
		return nil
	}
	if s.cl.Closed() || s.cl.Net.Conn == nil {
		return mochi.ErrConnectionClosed
	}
	s.cl.Lock()
	err := writeAcks(s.cl.Net.Conn, buf)
	s.cl.Unlock()
	if err != nil {
		s.cl.Stop(err)
		return fmt.Errorf("write pubacks: %w", err)
	}
	return nil
}

// ackWriteTimeout bounds writing acks to a connection that is not read
// through epoll (TLS, mochi's loop) when its socket buffer is full.
const ackWriteTimeout = time.Second

// errNotReading: the client left so many acks unread that its socket
// buffer is full.
var errNotReading = errors.New("mqtt client does not read its acks")

// writeAcks writes b to conn without letting a client that does not read
// hold the worker, which serves every client: a plain TCP connection read
// through epoll is written without waiting (a full socket buffer fails at
// once with errNotReading), any other within ackWriteTimeout. The caller
// disconnects the client on an error.
func writeAcks(conn net.Conn, b []byte) error {
	if c, ok := conn.(*pconn); ok && c.tls == nil {
		n, err := netpoll.WriteNow(c.raw, b)
		if err == nil && n < len(b) {
			err = errNotReading
		}
		return err
	}
	if err := conn.SetWriteDeadline(time.Now().Add(ackWriteTimeout)); err != nil {
		return err
	}
	_, err := conn.Write(b)
	if derr := conn.SetWriteDeadline(time.Time{}); err == nil {
		err = derr
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
