package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// modTelemetry is the module that starts tracing (the module map needs it
// before the api, ingest and pipeline modules).
const modTelemetry moduleName = "telemetry"

// TelemetryConfig configures tracing (OpenTelemetry over OTLP) and log
// sampling (docs/OPERATIONS.md).
type TelemetryConfig struct {
	// OTLPEndpoint turns tracing on (also OTEL_EXPORTER_OTLP_ENDPOINT).
	OTLPEndpoint string
	OTLPProtocol string
	SampleRatio  float64
	TrustRemote  bool
	// LogSampleFirst is how many warnings/errors with the same message
	// are logged per second; 0 logs all.
	LogSampleFirst int
}

// RegisterFlags binds the telemetry flags.
func (c *TelemetryConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.OTLPEndpoint, "otlp-endpoint", "IOT_OTLP_ENDPOINT", "", "send traces to this OTLP receiver (http://host:4318 for http/protobuf, http://host:4317 for grpc); empty: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, and without those tracing is off")
	envflag.String(fs, &c.OTLPProtocol, "otlp-protocol", "IOT_OTLP_PROTOCOL", "", "OTLP protocol: grpc or http/protobuf; empty: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http/protobuf")
	envflag.Float64(fs, &c.SampleRatio, "trace-sample-ratio", "IOT_TRACE_SAMPLE_RATIO", -1, "share of new traces recorded, 0 to 1 (a sampled parent is always followed); negative: OTEL_TRACES_SAMPLER_ARG for a traceidratio sampler, else 1")
	envflag.Bool(fs, &c.TrustRemote, "trace-trust-remote", "IOT_TRACE_TRUST_REMOTE", false, "continue the trace context (traceparent) callers send instead of starting a new trace linked to it")
	envflag.Int(fs, &c.LogSampleFirst, "log-sample-first", "IOT_LOG_SAMPLE_FIRST", 10, "log at most this many warnings or errors with the same message per second (the next one carries suppressed=<count>); 0 logs all")
}

// Validate checks the telemetry flags.
func (c *TelemetryConfig) Validate() error {
	var errs []error
	if c.LogSampleFirst < 0 {
		errs = append(errs, envflag.Errorf("log-sample-first", "must not be negative"))
	}
	if c.SampleRatio > 1 {
		errs = append(errs, envflag.Errorf("trace-sample-ratio", "must be at most 1"))
	}
	if err := c.config().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s, %s: %w", envflag.Name("otlp-endpoint"), envflag.Name("otlp-protocol"), err))
	}
	return errors.Join(errs...)
}

func (c *TelemetryConfig) config() telemetry.Config {
	return telemetry.Config{Endpoint: c.OTLPEndpoint, Protocol: c.OTLPProtocol, SampleRatio: c.SampleRatio, TrustRemote: c.TrustRemote}
}

// wrapLogger adds request and trace ids to records logged with a context,
// and samples repetitive warnings.
func wrapLogger(log *slog.Logger, c TelemetryConfig) *slog.Logger {
	h := log.Handler()
	if c.LogSampleFirst > 0 {
		h = telemetry.SamplingHandler(h, telemetry.SampleConfig{First: c.LogSampleFirst})
	}
	return slog.New(telemetry.LogHandler(h))
}

// initTelemetry starts tracing when an OTLP endpoint is configured; the
// exporter is flushed last at shutdown (its closer is registered first).
func (a *App) initTelemetry(ctx context.Context) (*telemetry.Provider, error) {
	cfg := a.cfg.Telemetry.config()
	cfg.Attributes = map[string]string{"iot.roles": a.cfg.Roles}
	if a.fn != nil { // function mode: which function this process is
		cfg.Attributes = map[string]string{"iot.roles": "function", "iot.function.contract": a.fn.cfg.Contract, "iot.function.procedures": strings.Join(a.fn.procedures, ",")}
	}
	a.registerOpsMetrics()
	p, err := telemetry.Setup(ctx, cfg)
	if err != nil || !p.Enabled() {
		return p, err
	}
	a.log.Info("tracing on", "otlp_endpoint", a.cfg.Telemetry.OTLPEndpoint, "sample_ratio", a.cfg.Telemetry.SampleRatio)
	a.onClose(func() error {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return p.Shutdown(sctx)
	})
	return p, nil
}

// auth is the authenticator the edges and the API use: the verifier, with
// an "authn.authenticate" span per check when tracing.
func (a *App) auth() authn.Authenticator { return telemetry.Authenticator(a.verifier) }

// traceOpts are the Connect handler options tracing every RPC (none while
// tracing is off).
func (a *App) traceOpts() []connect.HandlerOption {
	is, err := telemetry.ConnectInterceptors()
	if err != nil {
		a.log.Error("RPC tracing not available", "err", err)
		return nil
	}
	if len(is) == 0 {
		return nil
	}
	return []connect.HandlerOption{connect.WithInterceptors(is...)}
}
