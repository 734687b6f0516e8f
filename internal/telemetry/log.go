package telemetry

import (
	"context"
	"encoding/hex"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id id (logged as
// request_id by LogHandler).
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewRequestID returns a random 16-hex-digit request id.
func NewRequestID() string {
	var b [8]byte
	v := rand.Uint64()
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return hex.EncodeToString(b[:])
}

// ValidRequestID reports whether a caller-supplied X-Request-Id may be used
// as is: 1 to 64 characters of [A-Za-z0-9._-].
func ValidRequestID(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// LogHandler wraps h so every record logged with a context (InfoContext,
// WarnContext, ...) carries the request's request_id and, when the request
// is traced, its trace_id and span_id.
func LogHandler(h slog.Handler) slog.Handler { return ctxHandler{h} }

type ctxHandler struct{ slog.Handler }

func (h ctxHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := RequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h ctxHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return ctxHandler{h.Handler.WithAttrs(as)}
}
func (h ctxHandler) WithGroup(name string) slog.Handler { return ctxHandler{h.Handler.WithGroup(name)} }

// SampleConfig bounds repetitive log records.
type SampleConfig struct {
	// Level: records below it are never sampled (default warn).
	Level slog.Level
	// First records of one message pass in each Interval (default 10);
	// the rest of that interval are dropped and counted.
	First int
	// Interval is the sampling window (default 1s).
	Interval time.Duration
}

// SamplingHandler wraps h so records at or above cfg.Level that repeat the
// same message pass at most cfg.First times per cfg.Interval; the first
// record of a message after a window that dropped some carries
// suppressed=<count>. Messages are constant strings in this code base, so
// the set of keys stays small; it is capped at 1024 regardless (records of
// further messages pass unsampled).
func SamplingHandler(h slog.Handler, cfg SampleConfig) slog.Handler {
	if cfg.First <= 0 {
		cfg.First = 10
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	if cfg.Level == 0 {
		cfg.Level = slog.LevelWarn
	}
	return &samplingHandler{Handler: h, cfg: cfg, s: &sampler{m: map[sampleKey]*window{}, now: time.Now}}
}

type sampleKey struct {
	level slog.Level
	msg   string
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

type sampler struct {
	mu  sync.Mutex
	m   map[sampleKey]*window
	now func() time.Time
}

// admit decides for one record: pass, and how many were suppressed before it.
func (s *sampler) admit(k sampleKey, cfg SampleConfig) (bool, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	w := s.m[k]
	if w == nil {
		if len(s.m) >= 1024 {
			return true, 0
		}
		w = &window{start: now}
		s.m[k] = w
	}
	if now.Sub(w.start) >= cfg.Interval {
		w.start, w.passed = now, 0
	}
	if w.passed >= cfg.First {
		w.suppressed++
		return false, 0
	}
	w.passed++
	n := w.suppressed
	w.suppressed = 0
	return true, n
}

type samplingHandler struct {
	slog.Handler
	cfg SampleConfig
	s   *sampler
}

func (h *samplingHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < h.cfg.Level {
		return h.Handler.Handle(ctx, r)
	}
	ok, n := h.s.admit(sampleKey{r.Level, r.Message}, h.cfg)
	if !ok {
		return nil
	}
	if n > 0 {
		r.AddAttrs(slog.Int("suppressed", n))
	}
	return h.Handler.Handle(ctx, r)
}

func (h *samplingHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &samplingHandler{Handler: h.Handler.WithAttrs(as), cfg: h.cfg, s: h.s}
}

func (h *samplingHandler) WithGroup(name string) slog.Handler {
	return &samplingHandler{Handler: h.Handler.WithGroup(name), cfg: h.cfg, s: h.s}
}
