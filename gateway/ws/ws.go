// Package ws is the WebSocket ingest gateway. The device authenticates during
// the upgrade (authorization header; for browsers an `access_token` query
// parameter or the sub-protocols "bearer", "<token>"); every text message is
// a JSON reading or array (optionally wrapped as {"seq": n, "readings": ...}),
// every binary message a protobuf ReadingBatch, and each is answered with one
// JSON ack or error frame once durable.
package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/limits"
	"github.com/iotplatform/iotplatform/internal/netpoll"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// Ingester is the ingest path the gateway feeds (ingest.Service): each
// message is decoded and validated on its own, and the records of many are
// published together (edge.go's rounds).
type Ingester interface {
	DecodePayload(p ingest.Protocol, f ingest.Format, payload []byte) ([]ingest.Reading, error)
	Validate(ctx context.Context, device int64, p ingest.Protocol, rs []ingest.Reading) ([]*busv1.Record, error)
	Publish(ctx context.Context, p ingest.Protocol, recs []*busv1.Record) error
}

// Config tunes the gateway.
type Config struct {
	// MaxMessage is the largest accepted message in bytes (default 1 MiB).
	MaxMessage int64
	// IdleTimeout closes connections without a data message (default 5 min).
	IdleTimeout time.Duration
	// PingInterval is the keep-alive ping period (default 30 s).
	PingInterval time.Duration
	// WriteTimeout bounds writing one ack; a client that does not read its
	// acks is disconnected (default 10 s).
	WriteTimeout time.Duration
	// Streams caps the connections one device may hold (shared with its
	// other streams; nil: unlimited). Over the cap the upgrade is refused
	// with 429.
	Streams *limits.Streams
	// GoroutinePerConnection reads every connection with coder/websocket
	// on a goroutine of its own instead of through epoll (edge.go; Linux,
	// HTTP/1.1, TLS connections when accepted through Listener).
	GoroutinePerConnection bool
}

// SubprotocolBearer is offered by browser clients together with the token
// as a second sub-protocol.
const SubprotocolBearer = "bearer"

// Gateway upgrades and serves device connections.
type Gateway struct {
	log  *slog.Logger
	auth authn.Authenticator
	ing  Ingester
	cfg  Config
	// cmds delivers commands (nil: readings only); commands.go.
	cmds Commands

	// The epoll edge (edge.go), started by the first upgrade: poll
	// reports connections with bytes, readers read them, workers ingest
	// their messages, the sweep pings and times them out.
	edgeOnce             sync.Once
	poll                 *netpoll.Poller[*wconn]
	readers, workers     *netpoll.Pool[*wconn]
	sweepStop, sweepDone chan struct{}
	closed               atomic.Bool
	// tlsEpoll: TLS connections come through Listener (and can be read
	// through epoll).
	tlsEpoll atomic.Bool
}

// New returns the gateway handler.
func New(log *slog.Logger, auth authn.Authenticator, ing Ingester, cfg Config) *Gateway {
	if cfg.MaxMessage <= 0 {
		cfg.MaxMessage = 1 << 20
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	return &Gateway{log: log, auth: auth, ing: ing, cfg: cfg}
}

// Ack is the frame answering one message.
type Ack struct {
	// Index counts the connection's messages from 0.
	Index int `json:"index"`
	// Seq echoes the client's sequence number (envelope form only).
	Seq *uint64 `json:"seq,omitempty"`
	// Status is the HTTP gateway's status for the same payload (200, 400,
	// 413, 422, 503).
	Status   int                `json:"status"`
	Accepted int                `json:"accepted"`
	Code     string             `json:"code,omitempty"`
	Message  string             `json:"message,omitempty"`
	Errors   []ingest.ItemError `json:"errors,omitempty"`
}

type envelope struct {
	Seq      *uint64         `json:"seq"`
	Readings json.RawMessage `json:"readings"`
}

// refuse answers an upgrade with the error shape of docs/ERRORS.md.
func refuse(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	apierror.Write(w, status, apierror.CodeOfStatus(status), msg)
}

// ServeHTTP authenticates the upgrade (401/403 refuse it) and serves the
// connection on a goroutine of its own (the handler chain's stack is not
// kept for the connection's life).
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/healthz" {
		w.WriteHeader(http.StatusOK)
		return
	}
	tok, subproto, err := token(r)
	var creds authn.Credentials
	switch certs := authn.PeerCertificates(r.TLS); {
	case err == nil:
		creds.Token = tok
	case errors.Is(err, authn.ErrNoCredentials) && len(certs) > 0:
		creds.Certificates, err = certs, nil
	}
	var p authn.Principal
	if err == nil {
		p, err = authn.AuthenticateDevice(r.Context(), g.auth, creds)
	}
	if err != nil {
		refuse(w, authn.DeviceStatus(err), err.Error())
		return
	}
	release, ok := g.cfg.Streams.Acquire(limits.Caller(string(p.Kind), p.ID), "ws")
	if !ok {
		refuse(w, http.StatusTooManyRequests, "too many open streams for this device")
		return
	}
	opts := &websocket.AcceptOptions{InsecureSkipVerify: true} // tokens, not cookies: any origin
	if subproto != "" {
		opts.Subprotocols = []string{subproto}
	}
	recheck := func(ctx context.Context) (int, error) {
		_, err := authn.AuthenticateDevice(ctx, g.auth, creds)
		return authn.DeviceStatus(err), err
	}
	if g.accept(w, r, p, subproto, recheck, release) {
		return
	}
	c, err := websocket.Accept(w, r, opts)
	if err != nil {
		release()
		return
	}
	c.SetReadLimit(g.cfg.MaxMessage)
	ctx := context.WithoutCancel(r.Context())
	go func() {
		defer release()
		g.serve(ctx, c, p, recheck)
	}()
}

// token finds the credentials: header, then bearer sub-protocol, then query.
func token(r *http.Request) (tok, subproto string, err error) {
	if v := r.Header.Get("Authorization"); v != "" {
		tok, err = authn.TokenFromHeader(r.Header)
		if err != nil && looksLikeJWT(v) {
			// The original WebSocket gateway took the bare JWT as the
			// header value; a value that is not a JWT stays a 401.
			return strings.TrimSpace(v), "", nil
		}
		return tok, "", err
	}
	if protos := subprotocols(r); len(protos) == 2 && protos[0] == SubprotocolBearer {
		return protos[1], SubprotocolBearer, nil
	}
	if q := r.URL.Query().Get("access_token"); q != "" {
		return q, "", nil
	}
	return "", "", authn.ErrNoCredentials
}

// looksLikeJWT reports a compact JWS: three non-empty base64url parts.
func looksLikeJWT(v string) bool {
	parts := strings.Split(strings.TrimSpace(v), ".")
	if len(parts) != 3 {
		return false
	}
	for _, p := range parts {
		if p == "" || strings.Trim(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			return false
		}
	}
	return true
}

func subprotocols(r *http.Request) []string {
	var out []string
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

// serve reads messages until the connection ends; recheck re-verifies the
// credentials the upgrade was authenticated with (token or certificate).
func (g *Gateway) serve(ctx context.Context, c *websocket.Conn, p authn.Principal, recheck func(context.Context) (int, error)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer c.CloseNow()
	if g.cmds != nil {
		defer g.serveCommands(ctx, coderFrames{c, g.cfg.WriteTimeout}, p, recheck)()
	}
	defer g.keepAlive(ctx, c)()
	idle := time.AfterFunc(g.cfg.IdleTimeout, func() { c.Close(websocket.StatusPolicyViolation, "idle timeout") })
	defer idle.Stop()
	for i := 0; ; i++ {
		typ, msg, err := c.Read(ctx)
		if err != nil {
			return
		}
		if !idle.Stop() { // the idle close has begun
			return
		}
		var ack Ack
		// Re-check rotation/revocation (cached, so bounded by the auth
		// cache TTL and cheap).
		mctx, span := startMessage(ctx, len(msg))
		if status, err := recheck(mctx); err != nil {
			endMessage(span, Ack{Status: status})
			b, _ := json.Marshal(refusal(i, status, err))
			wctx, wcancel := context.WithTimeout(ctx, g.cfg.WriteTimeout)
			_ = c.Write(wctx, websocket.MessageText, b)
			wcancel()
			c.Close(websocket.StatusPolicyViolation, "credentials no longer valid")
			return
		}
		ack = g.handle(mctx, p, i, typ, msg)
		endMessage(span, ack)
		b, _ := json.Marshal(ack)
		wctx, wcancel := context.WithTimeout(ctx, g.cfg.WriteTimeout)
		err = c.Write(wctx, websocket.MessageText, b)
		wcancel()
		if err != nil {
			return
		}
		idle.Reset(g.cfg.IdleTimeout)
	}
}

// refusal is the ack of message i when the credentials are no longer
// valid (the connection is closed after it).
func refusal(i, status int, err error) Ack {
	code := apierror.CodeOfStatus(status)
	return Ack{Index: i, Status: status, Code: code, Message: err.Error(), Errors: []ingest.ItemError{{Index: -1, Code: code, Message: err.Error()}}}
}

// handle ingests one message (coder/websocket's loop): prepare, then the
// readings' publish.
func (g *Gateway) handle(ctx context.Context, p authn.Principal, i int, typ websocket.MessageType, msg []byte) Ack {
	ack, recs := g.prepare(ctx, p, i, typ, msg)
	if recs == nil {
		return ack
	}
	if err := g.ing.Publish(ctx, ingest.ProtocolWS, recs); err != nil {
		return failed(ack, err)
	}
	return ack
}

// prepare answers a command-side message, or decodes and validates
// readings as IngestPayload does: recs are what to publish (nil: ack is
// the whole answer, an error or a command message's).
func (g *Gateway) prepare(ctx context.Context, p authn.Principal, i int, typ websocket.MessageType, msg []byte) (ack Ack, recs []*busv1.Record) {
	if g.cmds != nil {
		if ack, ok := g.commandMessage(ctx, p, i, typ, msg); ok {
			return ack, nil
		}
	}
	ack = Ack{Index: i}
	media := "" // binary frames: protobuf, or JSON sent as binary
	if typ == websocket.MessageText {
		media = ingest.MediaJSON
	}
	f, _ := ingest.FormatOf(media)
	if typ == websocket.MessageText {
		if t := bytes.TrimLeft(msg, " \t\r\n"); len(t) > 0 && t[0] == '{' && bytes.Contains(t, []byte(`"readings"`)) {
			var env envelope
			if json.Unmarshal(t, &env) == nil && env.Readings != nil {
				ack.Seq, msg = env.Seq, env.Readings
			}
		}
	}
	rs, err := g.ing.DecodePayload(ingest.ProtocolWS, f, msg)
	if err == nil {
		recs, err = g.ing.Validate(ctx, p.ID, ingest.ProtocolWS, rs)
	}
	if err != nil {
		return failed(ack, err), nil
	}
	ack.Status, ack.Accepted = http.StatusOK, len(recs)
	return ack, recs
}

// failed is ack refused with err (its status, code and item errors).
func failed(ack Ack, err error) Ack {
	ack.Status, ack.Accepted = ingest.HTTPStatus(err), 0
	items := ingest.ItemErrorsOf(err)
	ack.Code, ack.Message = items[0].Code, ingest.PublicMessage(err)
	ack.Errors = items
	return ack
}

// keepAlive pings the client every PingInterval (from a timer, so an idle
// connection has no goroutine waiting for it) and closes the connection when
// a pong does not come within WriteTimeout; the returned func stops it.
func (g *Gateway) keepAlive(ctx context.Context, c *websocket.Conn) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(g.cfg.PingInterval, func() {
		pctx, cancel := context.WithTimeout(ctx, g.cfg.WriteTimeout)
		err := c.Ping(pctx)
		cancel()
		if err != nil {
			c.CloseNow()
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if !stopped {
			t.Reset(g.cfg.PingInterval)
		}
	})
	return func() {
		mu.Lock()
		defer mu.Unlock()
		stopped = true
		t.Stop()
	}
}
