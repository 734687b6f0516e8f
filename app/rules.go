package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	rulesv1 "github.com/iotplatform/iotplatform/gen/iot/rules/v1"
	"github.com/iotplatform/iotplatform/gen/iot/rules/v1/rulesv1connect"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/rules"
)

// RulesConfig configures rules, alerts, webhooks and retention (issue #15).
type RulesConfig struct {
	WebhookBackoff     time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookMaxAttempts int
	WebhookTimeout     time.Duration
	// RawRetention is how long raw readings are kept by default (0: forever).
	RawRetention time.Duration
	// MinuteRetention is how long per-minute aggregates are kept (0: forever).
	MinuteRetention time.Duration
	// RetentionInterval is how often expired readings are looked for.
	RetentionInterval time.Duration
}

// RegisterFlags binds the rules flags.
func (c *RulesConfig) RegisterFlags(fs *flag.FlagSet) {
	dur(fs, &c.WebhookBackoff, "webhook-backoff", "IOT_WEBHOOK_BACKOFF", time.Second, "wait after a failed webhook delivery; doubles with every further failure")
	dur(fs, &c.WebhookMaxBackoff, "webhook-max-backoff", "IOT_WEBHOOK_MAX_BACKOFF", 5*time.Minute, "longest wait between webhook delivery attempts")
	integer(fs, &c.WebhookMaxAttempts, "webhook-max-attempts", "IOT_WEBHOOK_MAX_ATTEMPTS", 10, "webhook delivery attempts before giving up")
	dur(fs, &c.WebhookTimeout, "webhook-timeout", "IOT_WEBHOOK_TIMEOUT", 10*time.Second, "time limit of one webhook delivery attempt")
	dur(fs, &c.RawRetention, "retention-raw", "IOT_RETENTION_RAW", 0, "how long raw readings are kept unless a sensor overrides it (0: forever)")
	dur(fs, &c.MinuteRetention, "retention-minute-rollups", "IOT_RETENTION_MINUTE_ROLLUPS", 0, "how long per-minute aggregates are kept (0: forever; per-hour aggregates are kept forever)")
	dur(fs, &c.RetentionInterval, "retention-interval", "IOT_RETENTION_INTERVAL", time.Minute, "how often expired readings are deleted")
}

// Validate checks the rules flags.
func (c *RulesConfig) Validate() error {
	var errs []error
	if c.WebhookBackoff <= 0 || c.WebhookMaxBackoff < c.WebhookBackoff {
		errs = append(errs, errors.New("--webhook-backoff (IOT_WEBHOOK_BACKOFF) must be positive and at most --webhook-max-backoff (IOT_WEBHOOK_MAX_BACKOFF)"))
	}
	if c.WebhookMaxAttempts < 1 {
		errs = append(errs, errors.New("--webhook-max-attempts (IOT_WEBHOOK_MAX_ATTEMPTS) must be at least 1"))
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, errors.New("--webhook-timeout (IOT_WEBHOOK_TIMEOUT) must be positive"))
	}
	if c.RawRetention < 0 || (c.RawRetention > 0 && c.RawRetention < time.Minute) {
		errs = append(errs, errors.New("--retention-raw (IOT_RETENTION_RAW) must be 0 (forever) or at least 1m"))
	}
	if c.MinuteRetention < 0 || (c.MinuteRetention > 0 && c.MinuteRetention < time.Hour) {
		errs = append(errs, errors.New("--retention-minute-rollups (IOT_RETENTION_MINUTE_ROLLUPS) must be 0 (forever) or at least 1h"))
	}
	if c.RetentionInterval <= 0 {
		errs = append(errs, errors.New("--retention-interval (IOT_RETENTION_INTERVAL) must be positive"))
	}
	return errors.Join(errs...)
}

// setupRules serves RulesService with the core role and, with the pipeline
// role, evaluates rules on every stored batch and delivers webhooks.
func (a *App) setupRules(ctx context.Context) error {
	rs, ok := a.reg.(registry.Rules)
	if !ok {
		return fmt.Errorf("registry %T does not store rules", a.reg)
	}
	c := a.cfg.Rules
	if a.roles["core"] {
		svc := rules.NewService(a.log.With("component", "rules"), a.reg, rs, rules.ServiceConfig{RawRetention: c.RawRetention, MinuteRetention: c.MinuteRetention})
		a.api.Handle(rulesv1connect.NewRulesServiceHandler(svc, a.connectOpts...))
		if err := rulesv1.RegisterRulesServiceHandlerServer(ctx, a.rest, rules.RESTServer{Service: svc}); err != nil {
			return err
		}
		a.grpcServices = append(a.grpcServices, rulesv1connect.RulesServiceName)
	}
	if !a.roles["pipeline"] || a.ext.pipeline == nil {
		return nil
	}
	eng := rules.NewEngine(a.log.With("component", "rules"), rs, a.reg, a.ext.store,
		rules.EngineConfig{Shared: a.cfg.Ingest.kafka().Brokers != ""}, a.metrics)
	if err := eng.Load(ctx); err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	n := rules.NewNotifier(a.log.With("component", "webhooks"), rs, rules.NotifierConfig{
		Backoff: c.WebhookBackoff, MaxBackoff: c.WebhookMaxBackoff, MaxAttempts: c.WebhookMaxAttempts, Timeout: c.WebhookTimeout,
	}, nil, a.metrics)
	eng.OnDeliveries(n.Wake)
	a.ext.pipeline.Observe(eng.Observe)
	a.addRunner("rules", eng.Run)
	a.addRunner("webhooks", n.Run)
	return nil
}
