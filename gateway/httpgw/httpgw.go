// Package httpgw is the HTTP ingest gateway, the original platform's contract:
// POST / with a JSON reading (or array) or a protobuf ReadingBatch and
// `authorization: Bearer <device token>`.
package httpgw

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
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
	p, err := authn.DeviceFromRequest(r, g.auth)
	if err != nil {
		status := authn.DeviceStatus(err)
		writeJSON(w, status, Response{Code: apierror.CodeOfStatus(status), Message: err.Error()})
		return
	}
	if g.cmds != nil {
		g.cmds.Seen(p.ID)
	}
	// The contract asks devices to declare the format: no Content-Type is
	// refused like an unknown one.
	format, ok := ingest.FormatOf(r.Header.Get("Content-Type"))
	if !ok || format == ingest.FormatAny {
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
		status, msg := ingest.HTTPStatus(err), ingest.PublicMessage(err)
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
