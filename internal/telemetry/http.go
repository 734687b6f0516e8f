package telemetry

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// RequestIDs wraps next so every request carries a request id in its
// context (logged as request_id): the caller's X-Request-Id when it is a
// plausible one, else a new one; it is echoed in the response header.
func RequestIDs(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if RequestID(r.Context()) != "" {
			next.ServeHTTP(w, r)
			return
		}
		id := r.Header.Get("X-Request-Id")
		if !ValidRequestID(id) {
			id = NewRequestID()
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(WithRequestID(r.Context(), id)))
	})
}

// HTTP wraps next for one listener (server names it: "http", "ws",
// "rest"): request ids as RequestIDs, and, when tracing is on, a server
// span per request continuing the caller's W3C trace context.
func HTTP(server string, next http.Handler) http.Handler {
	post, get := "POST "+server, "GET "+server
	traced := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t := tracer()
		if t == nil {
			next.ServeHTTP(w, r)
			return
		}
		ctx := r.Context()
		opts := []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindServer)}
		if r.Header.Get("Traceparent") != "" {
			if rctx := otel.GetTextMapPropagator().Extract(ctx, propagation.HeaderCarrier(r.Header)); trustRemote.Load() {
				ctx = rctx
			} else if sc := trace.SpanContextFromContext(rctx); sc.IsValid() {
				opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
			}
		}
		name := post
		switch r.Method {
		case http.MethodPost:
		case http.MethodGet:
			name = get
		default:
			name = r.Method + " " + server
		}
		ctx, span := t.Start(ctx, name, opts...)
		defer span.End()
		if !span.IsRecording() { // not sampled: only the context travels on
			next.ServeHTTP(w, r.WithContext(ctx))
			return
		}
		span.SetAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.path", r.URL.Path),
			attribute.String("iot.server", server), attribute.String("iot.request_id", RequestID(ctx)))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(ctx, spanNameKey{}, span)))
		span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
		if sw.status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(sw.status))
		}
	})
	return RequestIDs(traced)
}

type spanNameKey struct{}

// NameSpan renames the server span of the request in ctx (e.g. with the
// RPC that served a REST call), when there is one.
func NameSpan(ctx context.Context, name string) {
	if s, ok := ctx.Value(spanNameKey{}).(trace.Span); ok && name != "" {
		s.SetName(name)
	}
}

// statusWriter records the status code; it passes Flush, Hijack (WebSocket
// upgrades) and Unwrap through.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := w.ResponseWriter.(http.Hijacker); ok {
		w.status = http.StatusSwitchingProtocols
		return h.Hijack()
	}
	return nil, nil, errors.New("response writer cannot be hijacked")
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
