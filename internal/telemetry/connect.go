package telemetry

import (
	"connectrpc.com/connect"
	"connectrpc.com/otelconnect"
	"go.opentelemetry.io/otel"
)

// ConnectInterceptors returns the interceptors tracing every Connect, gRPC
// and gRPC-Web call (connect's OpenTelemetry interceptor, spans only: the
// RPC metrics are Prometheus'), or none while tracing is off.
func ConnectInterceptors() ([]connect.Interceptor, error) {
	if !Enabled() {
		return nil, nil
	}
	opts := []otelconnect.Option{
		otelconnect.WithTracerProvider(otel.GetTracerProvider()),
		otelconnect.WithPropagator(otel.GetTextMapPropagator()),
		otelconnect.WithoutMetrics(),
	}
	if trustRemote.Load() {
		opts = append(opts, otelconnect.WithTrustRemote())
	}
	i, err := otelconnect.NewInterceptor(opts...)
	if err != nil {
		return nil, err
	}
	return []connect.Interceptor{i}, nil
}
