package app

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// modTelemetry is the module that starts tracing (the module map needs it
// before the api, ingest and pipeline modules).
const modTelemetry moduleName = "telemetry"

// TelemetryConfig configures tracing (OpenTelemetry over OTLP) and log
// sampling (docs/OPERATIONS.md): its flags are declared in
// internal/telemetry (Flags).
type TelemetryConfig = telemetry.Flags

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
	cfg := a.cfg.Telemetry.Config()
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
