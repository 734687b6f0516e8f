package app

import (
	"context"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// rpcMetrics counts and times every RPC, whether it arrives over Connect,
// gRPC, gRPC-Web or REST.
type rpcMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newRPCMetrics(reg prometheus.Registerer) *rpcMetrics {
	m := &rpcMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_rpc_requests_total", Help: "RPCs handled, by procedure, protocol and result code.",
		}, []string{"procedure", "protocol", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "iot_rpc_duration_seconds", Help: "RPC latency, by procedure and protocol.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"procedure", "protocol"}),
	}
	reg.MustRegister(m.requests, m.duration)
	return m
}

func (m *rpcMetrics) observe(procedure, protocol string, code string, start time.Time) {
	m.requests.WithLabelValues(procedure, protocol, code).Inc()
	m.duration.WithLabelValues(procedure, protocol).Observe(time.Since(start).Seconds())
}

func codeLabel(err error) string {
	if err == nil {
		return "ok"
	}
	return connect.CodeOf(err).String()
}

// interceptor measures Connect, gRPC and gRPC-Web calls.
func (m *rpcMetrics) interceptor() connect.Interceptor { return metricsInterceptor{m} }

type metricsInterceptor struct{ m *rpcMetrics }

func (i metricsInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		start := time.Now()
		resp, err := next(ctx, req)
		i.m.observe(req.Spec().Procedure, req.Peer().Protocol, codeLabel(err), start)
		return resp, err
	}
}

func (i metricsInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i metricsInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		start := time.Now()
		err := next(ctx, conn)
		i.m.observe(conn.Spec().Procedure, conn.Peer().Protocol, codeLabel(err), start)
		return err
	}
}

// restInfo is filled in by the transcoder's hooks so the REST middleware can
// label its metrics with the RPC that served the request.
type restInfo struct {
	method string
	code   connect.Code
}

type restInfoKey struct{}

func restInfoFrom(ctx context.Context) *restInfo {
	h, _ := ctx.Value(restInfoKey{}).(*restInfo)
	return h
}

// rest measures REST calls.
func (m *rpcMetrics) rest(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		info := &restInfo{}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), restInfoKey{}, info)))
		proc, code := info.method, "ok"
		if proc == "" {
			proc = "unmatched"
		}
		if info.code != 0 {
			code = info.code.String()
		}
		m.observe(proc, "rest", code, start)
		telemetry.NameSpan(r.Context(), proc)
	})
}
