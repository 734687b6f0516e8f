package limits

import (
	"errors"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/apierror"
)

// GuardConfig tunes the request guard of one HTTP listener.
type GuardConfig struct {
	// Name labels the metrics ("api", "http", "ws", "debug").
	Name string
	// MaxBody is the largest request body in bytes (≤ 0: unlimited).
	MaxBody int64
	// MinRate is the slowest acceptable request body in bytes per second,
	// after Grace: a body that falls behind is cut off (≤ 0: no minimum).
	MinRate int64
	// Grace is how long a body may take before MinRate applies.
	Grace time.Duration
	// Streaming reports requests whose bodies are long-lived streams
	// (gRPC/Connect client and bidi streams) and are exempt from the size
	// and rate limits (their messages are limited one by one).
	Streaming func(r *http.Request) bool
	// Proxies decides the client address put in the request context.
	Proxies Proxies
}

// GuardMetrics count refused request bodies.
type GuardMetrics struct {
	refused *prometheus.CounterVec
}

// NewGuardMetrics registers the guard's metrics on reg (nil: unregistered).
func NewGuardMetrics(reg prometheus.Registerer) *GuardMetrics {
	m := &GuardMetrics{refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iot_http_refused_bodies_total",
		Help: "Request bodies refused by the guard, by listener and reason (too_large, too_slow)."}, []string{"listener", "reason"})}
	if reg != nil {
		reg.MustRegister(m.refused)
	}
	return m
}

// Guard wraps h: it puts the client address in the request context, refuses
// bodies whose Content-Length exceeds MaxBody with 413 before reading them,
// and limits the bytes and the rate of every other body as it is read. When
// the handler's read fails because of the guard, the handler's answer is
// replaced by 413 or 408 and the connection is closed.
func Guard(cfg GuardConfig, m *GuardMetrics, h http.Handler) http.Handler {
	if m == nil {
		m = NewGuardMetrics(nil)
	}
	tooLarge, tooSlow := m.refused.WithLabelValues(cfg.Name, "too_large"), m.refused.WithLabelValues(cfg.Name, "too_slow")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r = r.WithContext(WithClientAddr(r.Context(), cfg.Proxies.ClientAddr(r)))
		if r.Body == nil || r.Body == http.NoBody || (cfg.Streaming != nil && cfg.Streaming(r)) {
			h.ServeHTTP(w, r)
			return
		}
		if cfg.MaxBody > 0 && r.ContentLength > cfg.MaxBody {
			tooLarge.Inc()
			refuse(w, http.StatusRequestEntityTooLarge, "too_large", "request body exceeds "+strconv.FormatInt(cfg.MaxBody, 10)+" bytes")
			return
		}
		ctl := http.NewResponseController(w)
		b := &guardBody{rc: r.Body, ctl: ctl, cfg: &cfg, start: time.Now()}
		gw := &guardWriter{ResponseWriter: w, b: b}
		r.Body = b
		h.ServeHTTP(gw, r)
		switch b.state.Load() {
		case stateTooLarge:
			tooLarge.Inc()
			gw.refuse(http.StatusRequestEntityTooLarge, "too_large", "request body exceeds "+strconv.FormatInt(cfg.MaxBody, 10)+" bytes")
		case stateTooSlow:
			tooSlow.Inc()
			gw.refuse(http.StatusRequestTimeout, "too_slow", "request body arrived too slowly")
		}
		switch {
		case !b.eof:
			// The handler answered without reading the whole body (an
			// error, or the guard's refusal): net/http would now read up to
			// 256 KiB of the rest at the client's pace to keep the
			// connection, so let that read fail at once and the
			// connection close instead.
			_ = ctl.SetReadDeadline(time.Now())
		case b.deadline:
			_ = ctl.SetReadDeadline(time.Time{})
		}
	})
}

func refuse(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Connection", "close")
	apierror.Write(w, status, code, msg)
}

const (
	stateOK int32 = iota
	stateTooLarge
	stateTooSlow
)

// errTooSlow is what the handler reads when the body fell below the
// minimum rate.
var errTooSlow = errors.New("request body arrived too slowly")

type guardBody struct {
	rc       io.ReadCloser
	ctl      *http.ResponseController
	cfg      *GuardConfig
	start    time.Time
	n        int64
	eof      bool
	deadline bool // a read deadline was set
	state    atomic.Int32
}

func (b *guardBody) Read(p []byte) (int, error) {
	switch b.state.Load() {
	case stateTooLarge:
		return 0, &http.MaxBytesError{Limit: b.cfg.MaxBody}
	case stateTooSlow:
		return 0, errTooSlow
	}
	if b.cfg.MaxBody > 0 && int64(len(p)) > b.cfg.MaxBody-b.n+1 {
		p = p[:b.cfg.MaxBody-b.n+1]
	}
	if b.cfg.MinRate > 0 {
		// The body may take Grace plus one second per MinRate bytes so far.
		due := b.start.Add(b.cfg.Grace + time.Duration(float64(b.n)/float64(b.cfg.MinRate)*float64(time.Second)))
		if time.Now().After(due) {
			b.state.Store(stateTooSlow)
			return 0, errTooSlow
		}
		if b.ctl.SetReadDeadline(due) == nil {
			b.deadline = true
		}
	}
	n, err := b.rc.Read(p)
	b.n += int64(n)
	if b.cfg.MaxBody > 0 && b.n > b.cfg.MaxBody {
		b.state.Store(stateTooLarge)
		return n - int(b.n-b.cfg.MaxBody), &http.MaxBytesError{Limit: b.cfg.MaxBody}
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		b.state.Store(stateTooSlow)
		return n, errTooSlow
	}
	if err == io.EOF {
		b.eof = true
	}
	if err == io.EOF && b.deadline {
		// Done: later reads of the connection (the next request, the
		// server's background read) must not inherit the body deadline.
		_ = b.ctl.SetReadDeadline(time.Time{})
		b.deadline = false
	}
	return n, err
}

func (b *guardBody) Close() error { return b.rc.Close() }

// guardWriter holds back the handler's answer once the guard refused the
// body, so that the refusal (413/408) is what the client sees.
type guardWriter struct {
	http.ResponseWriter
	b     *guardBody
	wrote bool
}

func (w *guardWriter) blocked() bool { return w.b.state.Load() != stateOK && !w.wrote }

func (w *guardWriter) WriteHeader(code int) {
	if w.wrote || w.blocked() {
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *guardWriter) Write(p []byte) (int, error) {
	if w.blocked() {
		return len(p), nil
	}
	w.wrote = true
	return w.ResponseWriter.Write(p)
}

func (w *guardWriter) Flush() {
	if w.blocked() {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (w *guardWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *guardWriter) refuse(status int, code, msg string) {
	if w.wrote {
		return // the handler answered before reading the rest: keep it
	}
	w.wrote = true
	refuse(w.ResponseWriter, status, code, msg)
}
