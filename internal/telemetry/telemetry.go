// Package telemetry is the platform's OpenTelemetry tracing: it sets up the
// tracer provider and the OTLP exporter from a Config, and gives the rest of
// the code small helpers (Start, the bus and store wrappers, the record
// trace context, the log handler) that cost nothing while tracing is off.
//
// Tracing is off unless an OTLP endpoint is configured (Config.Endpoint or
// the standard OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variables). While it is
// off no tracer provider is installed, Start returns the context unchanged
// with a no-op span (no allocation), and the wrappers return what they wrap.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Protocols of the OTLP exporter.
const (
	ProtocolGRPC = "grpc"
	ProtocolHTTP = "http/protobuf"
)

// Config selects where traces go. The zero value (and no OTEL_* variables)
// means tracing off.
type Config struct {
	// Endpoint is the OTLP receiver: a URL (http://collector:4318,
	// https://collector:4317) or host:port. Empty falls back to
	// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT;
	// all empty: tracing off.
	Endpoint string
	// Protocol is grpc or http/protobuf; empty falls back to
	// OTEL_EXPORTER_OTLP_TRACES_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL, then
	// http/protobuf (the OpenTelemetry default).
	Protocol string
	// SampleRatio is the share of new traces recorded, 0..1 (a trace
	// continued from a sampled parent is always recorded). Negative: from
	// OTEL_TRACES_SAMPLER_ARG when OTEL_TRACES_SAMPLER is a traceidratio
	// sampler, else 1.
	SampleRatio float64
	// ServiceName names the process in traces (OTEL_SERVICE_NAME wins).
	ServiceName string
	// Attributes are added to the resource (e.g. the roles).
	Attributes map[string]string
	// TrustRemote continues the trace context callers send (traceparent
	// header) instead of starting a new trace linked to it. Off by default:
	// any caller could otherwise force its requests to be sampled.
	TrustRemote bool
}

// endpoint returns the configured endpoint (flag or OTEL_* variable) and
// whether tracing is on at all.
func (c Config) endpoint() (string, bool) {
	if v, _ := strconv.ParseBool(os.Getenv("OTEL_SDK_DISABLED")); v {
		return "", false
	}
	if os.Getenv("OTEL_TRACES_EXPORTER") == "none" {
		return "", false
	}
	if c.Endpoint != "" {
		return c.Endpoint, true
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"} {
		if os.Getenv(k) != "" {
			return "", true // the exporter reads the variable itself
		}
	}
	return "", false
}

func (c Config) protocol() string {
	if c.Protocol != "" {
		return c.Protocol
	}
	for _, k := range []string{"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := os.Getenv(k); v != "" {
			return v
		}
	}
	return ProtocolHTTP
}

func (c Config) ratio() (float64, error) {
	if c.SampleRatio >= 0 {
		return c.SampleRatio, nil
	}
	switch os.Getenv("OTEL_TRACES_SAMPLER") {
	case "traceidratio", "parentbased_traceidratio":
		arg := os.Getenv("OTEL_TRACES_SAMPLER_ARG")
		if arg == "" {
			return 1, nil
		}
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || f < 0 || f > 1 {
			return 0, fmt.Errorf("OTEL_TRACES_SAMPLER_ARG=%q: want a ratio between 0 and 1", arg)
		}
		return f, nil
	case "always_off", "parentbased_always_off":
		return 0, nil
	}
	return 1, nil
}

// Validate checks the configuration (flag names are the caller's).
func (c Config) Validate() error {
	var errs []error
	switch p := c.protocol(); p {
	case ProtocolGRPC, ProtocolHTTP:
	default:
		errs = append(errs, fmt.Errorf("OTLP protocol %q: want grpc or http/protobuf", p))
	}
	if c.SampleRatio > 1 {
		errs = append(errs, fmt.Errorf("trace sample ratio %v: want between 0 and 1", c.SampleRatio))
	}
	if _, err := c.ratio(); err != nil {
		errs = append(errs, err)
	}
	if c.Endpoint != "" {
		if _, err := endpointURL(c.Endpoint, c.protocol()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// endpointURL turns an endpoint into a URL: host:port becomes
// http://host:port; the HTTP protocol gets the /v1/traces path when none is
// given.
func endpointURL(ep, protocol string) (string, error) {
	if !strings.Contains(ep, "://") {
		ep = "http://" + ep
	}
	u, err := url.Parse(ep)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("OTLP endpoint %q: want http(s)://host:port or host:port", ep)
	}
	if protocol == ProtocolHTTP && (u.Path == "" || u.Path == "/") {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// Provider is the tracing of one process; Shutdown flushes and stops it.
type Provider struct {
	tp *sdktrace.TracerProvider
}

// Enabled reports whether traces are recorded and exported.
func (p *Provider) Enabled() bool { return p != nil && p.tp != nil }

// TracerProvider returns the provider to hand to instrumentation (a no-op
// one while tracing is off).
func (p *Provider) TracerProvider() trace.TracerProvider {
	if !p.Enabled() {
		return noop.NewTracerProvider()
	}
	return p.tp
}

// Shutdown exports what is buffered and stops the exporter.
func (p *Provider) Shutdown(ctx context.Context) error {
	if !p.Enabled() {
		return nil
	}
	stop()
	return p.tp.Shutdown(ctx)
}

// instrumentation is the tracer name of the platform's own spans.
const instrumentation = "github.com/iotplatform/iotplatform"

// state is the process-wide tracer; nil while tracing is off.
var state atomic.Pointer[trace.Tracer]

// trustRemote is Config.TrustRemote of the running provider.
var trustRemote atomic.Bool

func stop() { state.Store(nil) }

// Setup starts tracing for the process when cfg (or the OTEL_* variables)
// names an endpoint, installs it as the global provider and the W3C trace
// context propagator, and makes Start record spans. Without an endpoint it
// returns a disabled Provider and changes nothing.
func Setup(ctx context.Context, cfg Config) (*Provider, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ep, on := cfg.endpoint()
	if !on {
		return &Provider{}, nil
	}
	ratio, _ := cfg.ratio()
	var exp sdktrace.SpanExporter
	var err error
	switch cfg.protocol() {
	case ProtocolGRPC:
		var opts []otlptracegrpc.Option
		if ep != "" {
			u, _ := endpointURL(ep, ProtocolGRPC)
			opts = append(opts, otlptracegrpc.WithEndpointURL(u))
		}
		exp, err = otlptracegrpc.New(ctx, opts...)
	default:
		var opts []otlptracehttp.Option
		if ep != "" {
			u, _ := endpointURL(ep, ProtocolHTTP)
			opts = append(opts, otlptracehttp.WithEndpointURL(u))
		}
		exp, err = otlptracehttp.New(ctx, opts...)
	}
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter: %w", err)
	}
	name := cfg.ServiceName
	if name == "" {
		name = "iotplatform"
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", name)}
	for k, v := range cfg.Attributes {
		attrs = append(attrs, attribute.String(k, v))
	}
	// Later resources win: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES
	// override ours.
	res, err := resource.Merge(resource.NewSchemaless(attrs...), resource.Environment())
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	t := tp.Tracer(instrumentation)
	trustRemote.Store(cfg.TrustRemote)
	state.Store(&t)
	return &Provider{tp: tp}, nil
}

// Enabled reports whether this process records spans.
func Enabled() bool { return state.Load() != nil }

// noopSpan is returned by Start while tracing is off.
var noopSpan trace.Span = noop.Span{}

// Start starts a span of kind named name as a child of the span in ctx.
// While tracing is off it returns ctx itself and a no-op span, allocating
// nothing; callers set attributes only when span.IsRecording().
func Start(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	t := state.Load()
	if t == nil {
		return ctx, noopSpan
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.IsSampled() {
		// A child of an unsampled span is never recorded (parent-based
		// sampling): skip making one.
		return ctx, noopSpan
	}
	return (*t).Start(ctx, name, trace.WithSpanKind(kind))
}

// StartLinked starts a new trace (a root span named name) linked to the span
// in ctx: one message on a long-lived connection (WebSocket, MQTT) gets a
// trace of its own that points at the connection's.
func StartLinked(ctx context.Context, name string, kind trace.SpanKind) (context.Context, trace.Span) {
	t := state.Load()
	if t == nil {
		return ctx, noopSpan
	}
	opts := []trace.SpanStartOption{trace.WithNewRoot(), trace.WithSpanKind(kind)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	return (*t).Start(ctx, name, opts...)
}

// tracer returns the process tracer, or nil while tracing is off.
func tracer() trace.Tracer {
	if t := state.Load(); t != nil {
		return *t
	}
	return nil
}

// Fail marks span as failed with err (a no-op for nil err or a no-op span).
func Fail(span trace.Span, err error) {
	if err == nil || !span.IsRecording() {
		return
	}
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
}
