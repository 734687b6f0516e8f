// Package mqtt is the MQTT ingest gateway on mochi-mqtt (MQTT 3.1, 3.1.1
// and 5): username `JWT` and the device token as password at CONNECT (or,
// over TLS with mutual TLS enabled, a device client certificate), publish
// to the topic `<device_id>`, QoS 0 or 1. A QoS 1 PUBACK is written only once
// the readings are durable: OnPublish validates the payload and queues it to
// the client's worker, which merges queued publishes into one bus publish and
// then acks them in order.
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
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/limits"
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
	QueueSize int
	// MaxMerge bounds the records merged into one bus publish (default 5000).
	MaxMerge int
	// MaxPacket bounds every MQTT packet, CONNECT included, in bytes
	// (default 1 MiB); larger ones close the connection before they are read.
	MaxPacket int
	// Streams caps the connections one device may hold (shared with its
	// other streams; nil: unlimited). Over the cap CONNECT is refused.
	Streams *limits.Streams
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

	// cmds delivers commands (nil: subscriptions are refused); commands.go.
	cmds        Commands
	cmdSessions sync.Map // *mochi.Client → *cmdSession

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
	if cfg.MaxPacket <= 0 {
		cfg.MaxPacket = 1 << 20
	}
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(cfg.MaxPacket)
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.WildcardSubAvailable = 1 // <device_id>/commands/# (commands.go)
	caps.SharedSubAvailable = 0
	caps.MaximumSessionExpiryInterval = 0
	g := &Gateway{log: log, auth: auth, ing: ing, cfg: cfg,
		srv: mochi.New(&mochi.Options{Capabilities: caps, Logger: log.With("component", "mochi")}),
		deadLetters: prometheus.NewCounter(prometheus.CounterOpts{Name: "iot_mqtt_invalid_payloads_total",
			Help: "Invalid MQTT payloads (3.x: dead-lettered; 5: refused with a PUBACK reason code)."}),
		denied: prometheus.NewCounter(prometheus.CounterOpts{Name: "iot_mqtt_acl_denied_total",
			Help: "Publishes or subscriptions refused by the topic ACL."}),
	}
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
	if err := g.srv.AddListener(listeners.NewNet("mqtt", ln)); err != nil {
		return fmt.Errorf("add mqtt listener: %w", err)
	}
	if err := g.srv.Serve(); err != nil {
		return fmt.Errorf("serve mqtt: %w", err)
	}
	<-ctx.Done()
	if err := g.srv.Close(); err != nil {
		return fmt.Errorf("close mqtt: %w", err)
	}
	return nil
}

// ID implements mochi.Hook.
func (g *Gateway) ID() string { return "iotplatform-ingest" }

// Provides implements mochi.Hook.
func (g *Gateway) Provides(b byte) bool {
	return bytes.Contains([]byte{mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPacketRead, mochi.OnPublish, mochi.OnDisconnect,
		mochi.OnSessionEstablished, mochi.OnSubscribed, mochi.OnQosComplete}, []byte{b})
}

// OnPacketRead refuses QoS 2 publishes: the server offers QoS 0 and 1 only
// (MQTT 5 clients are told so in CONNACK), and silently downgrading would
// answer a 3.x client's QoS 2 with a PUBACK it never expects.
func (g *Gateway) OnPacketRead(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
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

	once sync.Once
	q    chan job
	// release gives back the device's stream (per-caller cap).
	release func()
	// ctx lives as long as the worker: a disconnect does not cancel it, so
	// publishes the server fully received are still ingested.
	ctx    context.Context
	cancel context.CancelFunc
	// gone is closed when the client disconnected; the worker then drains
	// the queue and stops.
	gone     chan struct{}
	goneOnce sync.Once
}

func (s *session) disconnected() bool {
	select {
	case <-s.gone:
		return true
	default:
		return false
	}
}

type job struct {
	qos  byte
	pid  uint16
	recs []*busv1.Record
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
	} else if tc, ok := cl.Net.Conn.(*tls.Conn); ok {
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
		v5: pk.ProtocolVersion == 5, cl: cl, q: make(chan job, g.cfg.QueueSize), gone: make(chan struct{}), release: release}
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

// OnDisconnect tells the client's worker to stop once it has ingested every
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
		s.goneOnce.Do(func() { close(s.gone) })
		s.once.Do(func() { s.cancel() }) // no worker yet: nothing queued
	}
}

func (g *Gateway) session(cl *mochi.Client) *session {
	v, ok := g.sessions.Load(cl)
	if !ok {
		return nil
	}
	return v.(*session)
}

// OnPublish validates the payload and queues it; mochi itself never acks
// (ErrRejectPacket), the worker does once durable.
func (g *Gateway) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	s := g.session(cl)
	if s == nil {
		return pk, packets.ErrRejectPacket
	}
	ctx, span := startPublish(s, pk)
	if err := s.recheck(ctx); err != nil { // rotation/revocation, cached
		g.log.InfoContext(ctx, "mqtt credentials no longer valid", "device_id", s.device, "err", err)
		endSpan(span, err)
		_ = g.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
		return pk, packets.ErrRejectPacket
	}
	if g.cmds != nil {
		if pk.TopicName != s.topic {
			endSpan(span, nil)
			return g.commandPublish(cl, s, pk)
		}
		g.cmds.Seen(s.device)
	}
	j := job{qos: pk.FixedHeader.Qos, pid: pk.PacketID, span: span}
	rs, err := g.ing.DecodePayload(ingest.ProtocolMQTT, ingest.FormatAny, pk.Payload)
	if err == nil {
		j.recs, err = g.ing.Validate(ctx, s.device, ingest.ProtocolMQTT, rs)
	}
	if err != nil {
		var be *ingest.BatchError
		if !errors.As(err, &be) { // registry trouble: refuse like an unavailable bus
			g.log.WarnContext(ctx, "mqtt publish refused", "device_id", s.device, "err", err)
			endSpan(span, err)
			_ = g.srv.DisconnectClient(cl, packets.ErrServerUnavailable)
			return pk, packets.ErrRejectPacket
		}
		if be.Class == ingest.ClassRateLimited && (!s.v5 || j.qos == 0) {
			// Over the device's rate limit and no PUBACK to carry the
			// refusal (MQTT 3.x, or QoS 0): disconnect — MQTT 5 with
			// reason 0x96 — rather than drop silently. A QoS 1 client
			// resends the unacknowledged publish after reconnecting.
			g.log.InfoContext(ctx, "mqtt publish over the device's rate limit, disconnecting", "device_id", s.device, "qos", j.qos)
			endSpan(span, err)
			_ = g.srv.DisconnectClient(cl, packets.ErrMessageRateTooHigh)
			return pk, packets.ErrRejectPacket
		}
		if be.Class != ingest.ClassRateLimited {
			g.deadLetters.Inc()
		}
		if s.v5 {
			code := reasonCode(be)
			j.code = &code
			j.reason = err
		} else {
			j.dead, j.reason = append([]byte(nil), pk.Payload...), err
		}
	}
	s.once.Do(func() { go g.work(s) })
	select {
	case s.q <- j: // blocks the client's read loop when full: back-pressure
	case <-s.ctx.Done(): // the worker stopped after a bus failure
		endSpan(span, s.ctx.Err())
	}
	return pk, packets.ErrRejectPacket
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

// work publishes a client's queued jobs in order, merging consecutive
// valid publishes into one bus publish, and acks each after it is durable.
func (g *Gateway) work(s *session) {
	defer s.cancel()
	var batch []job
	for {
		select {
		case j := <-s.q:
			batch = append(batch[:0], j)
		case <-s.gone:
			select {
			case j := <-s.q:
				batch = append(batch[:0], j)
			default:
				return // disconnected and everything received is ingested
			}
		}
		n := len(batch[0].recs)
	drain:
		for n < g.cfg.MaxMerge {
			select {
			case j := <-s.q:
				batch = append(batch, j)
				n += len(j.recs)
			default:
				break drain
			}
		}
		err := g.process(s, batch)
		for _, j := range batch {
			endSpan(j.span, err)
		}
		if err != nil {
			if s.disconnected() {
				g.log.Warn("mqtt publishes of a disconnected client not durable; unacknowledged, dropped", "device_id", s.device, "err", err)
				return
			}
			g.log.Warn("mqtt publish not durable, disconnecting", "device_id", s.device, "err", err)
			code := packets.ErrServerUnavailable
			if !s.v5 {
				code = packets.ErrUnspecifiedError
			}
			_ = g.srv.DisconnectClient(s.cl, code)
			return
		}
	}
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
	for i, j := range batch {
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
			g.acked(s, g.ack(s, j, packets.CodeSuccess))
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
// syscall for a merged batch instead of one per publish), under the client's
// write lock like mochi's own WritePacket.
func (g *Gateway) ackAll(s *session, jobs []job) error {
	if len(jobs) == 1 {
		return g.ack(s, jobs[0], packets.CodeSuccess)
	}
	var buf bytes.Buffer
	for _, j := range jobs {
		if j.qos == 0 {
			continue
		}
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: j.pid,
			ProtocolVersion: s.cl.Properties.ProtocolVersion}
		if err := pk.PubackEncode(&buf); err != nil {
			return fmt.Errorf("encode puback: %w", err)
		}
	}
	if buf.Len() == 0 || s.disconnected() {
		return nil
	}
	if s.cl.Closed() || s.cl.Net.Conn == nil {
		return mochi.ErrConnectionClosed
	}
	s.cl.Lock()
	defer s.cl.Unlock()
	if _, err := buf.WriteTo(s.cl.Net.Conn); err != nil {
		return fmt.Errorf("write pubacks: %w", err)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
