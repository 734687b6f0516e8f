package telemetry

import (
	"errors"
	"flag"
	"fmt"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are tracing's (OpenTelemetry over OTLP) and log sampling's
// command-line settings (`iotplatform serve`, each with its IOT_*
// variable; docs/OPERATIONS.md).
type Flags struct {
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
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.OTLPEndpoint, "otlp-endpoint", "IOT_OTLP_ENDPOINT", "", "send traces to this OTLP receiver (http://host:4318 for http/protobuf, http://host:4317 for grpc); empty: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, and without those tracing is off")
	envflag.String(fs, &c.OTLPProtocol, "otlp-protocol", "IOT_OTLP_PROTOCOL", "", "OTLP protocol: grpc or http/protobuf; empty: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http/protobuf")
	envflag.Float64(fs, &c.SampleRatio, "trace-sample-ratio", "IOT_TRACE_SAMPLE_RATIO", -1, "share of new traces recorded, 0 to 1 (a sampled parent is always followed); negative: OTEL_TRACES_SAMPLER_ARG for a traceidratio sampler, else 1")
	envflag.Bool(fs, &c.TrustRemote, "trace-trust-remote", "IOT_TRACE_TRUST_REMOTE", false, "continue the trace context (traceparent) callers send instead of starting a new trace linked to it")
	envflag.Int(fs, &c.LogSampleFirst, "log-sample-first", "IOT_LOG_SAMPLE_FIRST", 10, "log at most this many warnings or errors with the same message per second (the next one carries suppressed=<count>); 0 logs all")
}

// Validate checks the telemetry flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.LogSampleFirst < 0 {
		errs = append(errs, envflag.Errorf("log-sample-first", "must not be negative"))
	}
	if c.SampleRatio > 1 {
		errs = append(errs, envflag.Errorf("trace-sample-ratio", "must be at most 1"))
	}
	if err := c.Config().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("%s, %s: %w", envflag.Name("otlp-endpoint"), envflag.Name("otlp-protocol"), err))
	}
	return errors.Join(errs...)
}

// Config is the tracing configuration the flags describe.
func (c *Flags) Config() Config {
	return Config{Endpoint: c.OTLPEndpoint, Protocol: c.OTLPProtocol, SampleRatio: c.SampleRatio, TrustRemote: c.TrustRemote}
}
