// Package httpgw is the HTTP ingest gateway, the original platform's contract:
// POST / with a JSON reading (or array) or a protobuf ReadingBatch and
// `authorization: Bearer <device token>`.
package httpgw

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// Ingester is the ingest path the gateway feeds (ingest.Service).
type Ingester interface {
	IngestPayload(ctx context.Context, device int64, p ingest.Protocol, f ingest.Format, payload []byte) (int, error)
}

// Config tunes the gateway.
type Config struct {
	// MaxBody is the largest accepted request body in bytes (default 1 MiB).
	MaxBody int64
}

// Gateway serves POST /.
type Gateway struct {
	log  *slog.Logger
	auth authn.Authenticator
	ing  Ingester
	cfg  Config
	bufs sync.Pool
	// cmds and polls serve the command endpoints (nil: none); commands.go.
	cmds  Commands
	polls *polls
}

// New returns the gateway handler.
func New(log *slog.Logger, auth authn.Authenticator, ing Ingester, cfg Config) *Gateway {
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 1 << 20
	}
	return &Gateway{log: log, auth: auth, ing: ing, cfg: cfg,
		bufs: sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}}
}

// Response is the JSON body of every answer.
type Response struct {
	Accepted int                `json:"accepted"`
	Code     string             `json:"code,omitempty"`
	Message  string             `json:"message,omitempty"`
	Errors   []ingest.ItemError `json:"errors,omitempty"`
}

// ServeHTTP implements the gateway contract: 200, 400, 401, 403, 405, 413,
// 415, 422, 429 (the device's rate limit, with Retry-After), 503.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		if g.cmds != nil && g.serveCommands(w, r) {
			return
		}
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeJSON(w, http.StatusMethodNotAllowed, Response{Code: "method_not_allowed", Message: "use POST"})
		return
	}
	p, status, err := AuthenticateRequest(r, g.auth)
	if err != nil {
		writeJSON(w, status, Response{Code: CodeOfStatus(status), Message: err.Error()})
		return
	}
	if g.cmds != nil {
		g.cmds.Seen(p.ID)
	}
	format, ok := formatOf(r.Header.Get("Content-Type"))
	if !ok {
		writeJSON(w, http.StatusUnsupportedMediaType, Response{Code: "unsupported_media_type",
			Message: "Content-Type must be application/json or application/x-protobuf"})
		return
	}
	if r.ContentLength > g.cfg.MaxBody {
		writeJSON(w, http.StatusRequestEntityTooLarge, Response{Code: ingest.CodeTooLarge, Message: "body exceeds " + strconv.FormatInt(g.cfg.MaxBody, 10) + " bytes"})
		return
	}
	bp := g.bufs.Get().(*[]byte)
	defer g.bufs.Put(bp)
	body, err := readAll(http.MaxBytesReader(w, r.Body, g.cfg.MaxBody), (*bp)[:0])
	*bp = body[:0]
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, Response{Code: ingest.CodeTooLarge, Message: "body exceeds " + strconv.FormatInt(g.cfg.MaxBody, 10) + " bytes"})
			return
		}
		writeJSON(w, http.StatusBadRequest, Response{Code: ingest.CodeMalformed, Message: "read body: " + err.Error()})
		return
	}
	n, err := g.ing.IngestPayload(r.Context(), p.ID, ingest.ProtocolHTTP, format, body)
	if err != nil {
		status, msg := StatusOf(err), MessageOf(err)
		if status >= 500 && status != http.StatusServiceUnavailable {
			g.log.ErrorContext(r.Context(), "ingest failed", "device_id", p.ID, "status", status, "err", err)
		}
		if status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.Itoa(int((ingest.RetryAfter(err)+time.Second-1)/time.Second)))
		}
		writeJSON(w, status, Response{Code: codeOf(err), Message: msg, Errors: itemErrors(err)})
		return
	}
	writeJSON(w, http.StatusOK, Response{Accepted: n})
}

// Authenticate verifies the bearer token of h and requires a device: 401 for
// a missing or malformed header, 403 for an invalid, revoked or non-device
// token (the original gateways' contract). It is shared with the WebSocket
// gateway's upgrade.
func Authenticate(ctx context.Context, a authn.Authenticator, h http.Header) (authn.Principal, int, error) {
	tok, err := authn.TokenFromHeader(h)
	if err != nil {
		return authn.Principal{}, http.StatusUnauthorized, err
	}
	return AuthenticateToken(ctx, a, tok)
}

// AuthenticateRequest is Authenticate, falling back to the TLS client
// certificate when the request has no authorization header.
func AuthenticateRequest(r *http.Request, a authn.Authenticator) (authn.Principal, int, error) {
	if r.Header.Get("Authorization") == "" {
		if certs := authn.PeerCertificates(r.TLS); len(certs) > 0 {
			return AuthenticateCertificate(r.Context(), a, certs)
		}
	}
	return Authenticate(r.Context(), a, r.Header)
}

// AuthenticateCertificate authenticates a device by its TLS client
// certificate (authn.AuthenticateCredentials): 401 when it is refused, like
// a missing credential; 503 when the registry could not be asked in time.
func AuthenticateCertificate(ctx context.Context, a authn.Authenticator, certs []*x509.Certificate) (authn.Principal, int, error) {
	p, err := authn.AuthenticateCredentials(ctx, a, authn.Credentials{Certificates: certs})
	if err != nil {
		if ctx.Err() != nil {
			return p, http.StatusServiceUnavailable, err
		}
		return p, http.StatusUnauthorized, authn.ErrInvalidCertificate
	}
	return p, http.StatusOK, nil
}

// AuthenticateToken is Authenticate for a bare token.
func AuthenticateToken(ctx context.Context, a authn.Authenticator, tok string) (authn.Principal, int, error) {
	p, err := a.Authenticate(ctx, tok)
	if err != nil {
		if ctx.Err() != nil {
			return p, http.StatusServiceUnavailable, err
		}
		if errors.Is(err, authn.ErrTokenExpired) {
			return p, http.StatusUnauthorized, authn.ErrTokenExpired
		}
		return p, http.StatusForbidden, authn.ErrInvalidToken
	}
	if p.Kind != authn.KindDevice {
		return p, http.StatusForbidden, errors.New("not a device token")
	}
	return p, http.StatusOK, nil
}

// CodeOfStatus is the error code (docs/ERRORS.md) of an authentication
// refusal's HTTP status, shared by the HTTP and WebSocket gateways.
func CodeOfStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthenticated"
	case http.StatusForbidden:
		return "permission_denied"
	case http.StatusServiceUnavailable:
		return ingest.CodeUnavailable
	case http.StatusTooManyRequests:
		return "resource_exhausted"
	}
	return "internal"
}

// MessageOf is the message a device is told for an ingest error: the
// refusal's own words, never the cause of an internal failure (logged).
func MessageOf(err error) string {
	switch StatusOf(err) {
	case http.StatusServiceUnavailable:
		// The ingest service logged the cause.
		return "the platform cannot take readings right now; nothing was stored, retry later"
	case http.StatusInternalServerError:
		return "internal error"
	}
	return err.Error()
}

// StatusOf maps an ingest error to its HTTP status.
func StatusOf(err error) int {
	var be *ingest.BatchError
	switch {
	case errors.As(err, &be):
		switch be.Class {
		case ingest.ClassRejected:
			return http.StatusUnprocessableEntity
		case ingest.ClassTooLarge:
			return http.StatusRequestEntityTooLarge
		case ingest.ClassRateLimited:
			return http.StatusTooManyRequests
		}
		return http.StatusBadRequest
	case errors.Is(err, bus.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func codeOf(err error) string {
	if items := ingest.ItemErrorsOf(err); len(items) > 0 {
		return items[0].Code
	}
	return "internal"
}

func itemErrors(err error) []ingest.ItemError {
	var be *ingest.BatchError
	if errors.As(err, &be) {
		return be.Items
	}
	return nil
}

func formatOf(ct string) (ingest.Format, bool) {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return 0, false
	}
	switch mt {
	case "application/json":
		return ingest.FormatJSON, true
	case "application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf":
		return ingest.FormatProto, true
	}
	return 0, false
}

func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if err == io.EOF {
				return b, nil
			}
			return b, err
		}
	}
}

func writeJSON(w http.ResponseWriter, status int, v Response) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if status == http.StatusOK {
		// Hot path: no reflection.
		_, _ = w.Write(strconv.AppendInt([]byte(`{"accepted":`), int64(v.Accepted), 10))
		_, _ = w.Write([]byte("}\n"))
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}
