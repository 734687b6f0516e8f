package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"slices"
	"time"

	"github.com/iotplatform/iotplatform/gen/iot/rules/v1/rulesv1connect"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/gengrpc/rulesv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/services/rules"
)

// RulesConfig configures rules, alerts, webhooks and retention (docs/RULES.md).
type RulesConfig struct {
	WebhookBackoff     time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookMaxAttempts int
	WebhookTimeout     time.Duration
	// WebhookAllowNets lists internal networks webhooks may reach
	// (comma-separated CIDR prefixes or addresses; default none).
	WebhookAllowNets string
	// RawRetention is how long raw readings are kept by default (0: forever).
	RawRetention time.Duration
	// MinuteRetention is how long per-minute aggregates are kept (0: forever).
	MinuteRetention time.Duration
	// RetentionInterval is how often expired readings are looked for.
	RetentionInterval time.Duration
}

// RegisterFlags binds the rules flags.
func (c *RulesConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.WebhookBackoff, "webhook-backoff", "IOT_WEBHOOK_BACKOFF", time.Second, "wait after a failed webhook delivery; doubles with every further failure")
	envflag.Duration(fs, &c.WebhookMaxBackoff, "webhook-max-backoff", "IOT_WEBHOOK_MAX_BACKOFF", 5*time.Minute, "longest wait between webhook delivery attempts")
	envflag.Int(fs, &c.WebhookMaxAttempts, "webhook-max-attempts", "IOT_WEBHOOK_MAX_ATTEMPTS", 10, "webhook delivery attempts before giving up")
	envflag.Duration(fs, &c.WebhookTimeout, "webhook-timeout", "IOT_WEBHOOK_TIMEOUT", 10*time.Second, "time limit of one webhook delivery attempt")
	envflag.String(fs, &c.WebhookAllowNets, "webhook-allow-nets", "IOT_WEBHOOK_ALLOW_NETS", "", "internal networks webhooks may reach, as comma-separated CIDR prefixes or addresses (e.g. 10.1.0.0/16,127.0.0.1); by default webhooks reach public addresses only")
	envflag.Duration(fs, &c.RawRetention, "retention-raw", "IOT_RETENTION_RAW", 0, "how long raw readings are kept unless a sensor overrides it (0: forever)")
	envflag.Duration(fs, &c.MinuteRetention, "retention-minute-rollups", "IOT_RETENTION_MINUTE_ROLLUPS", 0, "how long per-minute aggregates are kept before they are folded into per-hour ones (0: forever; per-hour aggregates are kept forever)")
	envflag.Duration(fs, &c.RetentionInterval, "retention-interval", "IOT_RETENTION_INTERVAL", time.Minute, "how often expired readings are deleted")
}

// Validate checks the rules flags.
func (c *RulesConfig) Validate() error {
	var errs []error
	if c.WebhookBackoff <= 0 || c.WebhookMaxBackoff < c.WebhookBackoff {
		errs = append(errs, envflag.Errorf("webhook-backoff", "must be positive and at most --webhook-max-backoff"))
	}
	if c.WebhookMaxAttempts < 1 {
		errs = append(errs, envflag.Errorf("webhook-max-attempts", "must be at least 1"))
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, envflag.Errorf("webhook-timeout", "must be positive"))
	}
	if _, err := rules.ParseAllowNets(c.WebhookAllowNets); err != nil {
		errs = append(errs, envflag.Errorf("webhook-allow-nets", "%v", err))
	}
	if c.RawRetention < 0 || (c.RawRetention > 0 && c.RawRetention < time.Minute) {
		errs = append(errs, envflag.Errorf("retention-raw", "must be 0 (forever) or at least 1m"))
	}
	if c.MinuteRetention < 0 || (c.MinuteRetention > 0 && c.MinuteRetention < time.Hour) {
		errs = append(errs, envflag.Errorf("retention-minute-rollups", "must be 0 (forever) or at least 1h"))
	}
	if c.RetentionInterval <= 0 {
		errs = append(errs, envflag.Errorf("retention-interval", "must be positive"))
	}
	return errors.Join(errs...)
}

// rulesStore is the registry's rules contract.
func (a *App) rulesStore() (registry.Rules, error) {
	rs, ok := a.reg.(registry.Rules)
	if !ok {
		return nil, fmt.Errorf("registry %T does not store rules", a.reg)
	}
	return rs, nil
}

// initRules serves RulesService (Connect, gRPC, gRPC-Web, REST).
func (a *App) initRules(ctx context.Context) (*rules.Service, error) {
	rs, err := a.rulesStore()
	if err != nil {
		return nil, err
	}
	c := a.cfg.Rules
	svc := rules.NewService(a.log.With("component", "rules"), a.reg, rs, rules.ServiceConfig{RawRetention: c.RawRetention, MinuteRetention: c.MinuteRetention})
	return svc, a.mountRules(ctx, svc)
}

func (a *App) mountRules(ctx context.Context, svc *rules.Service) error {
	a.api.Handle(rulesv1connect.NewRulesServiceHandler(svc, a.connectOpts...))
	a.grpcServices = append(a.grpcServices, rulesv1connect.RulesServiceName)
	if err := rulesv1grpc.RegisterRulesServiceHandlerServer(ctx, a.rest, rules.RESTServer{Service: svc}); err != nil {
		return fmt.Errorf("register rules REST: %w", err)
	}
	return nil
}

// initAlerting evaluates rules on every batch the pipeline stores and
// delivers webhooks.
func (a *App) initAlerting(ctx context.Context) (*rules.Engine, error) {
	rs, err := a.rulesStore()
	if err != nil {
		return nil, err
	}
	if a.pipeline == nil || a.store == nil {
		return nil, errors.New("rule evaluation needs the pipeline and a store")
	}
	c := a.cfg.Rules
	eng := rules.NewEngine(a.log.With("component", "rules"), rs, a.reg, a.store.Store,
		rules.EngineConfig{Shared: a.cfg.Bus.Kafka.Brokers != ""}, a.metrics)
	if err := eng.Load(ctx); err != nil {
		return nil, fmt.Errorf("load rules: %w", err)
	}
	allow, err := rules.ParseAllowNets(c.WebhookAllowNets)
	if err != nil {
		return nil, err // refused by Validate already
	}
	n := rules.NewNotifier(a.log.With("component", "webhooks"), rs, rules.NotifierConfig{
		Backoff: c.WebhookBackoff, MaxBackoff: c.WebhookMaxBackoff, MaxAttempts: c.WebhookMaxAttempts, Timeout: c.WebhookTimeout,
		AllowNets: allow,
	}, nil, a.metrics)
	eng.OnDeliveries(n.Wake)
	a.pipeline.Observe(eng.Observe)
	a.addRunner("rules", eng.Run)
	a.addRunner("webhooks", n.Run)
	return eng, nil
}

// functionRules serves RulesService in function mode when a selected
// procedure is one of its own (function.go filters the rest).
func (a *App) functionRules(ctx context.Context) error {
	for _, r := range coreRoutes() {
		if r.service == rulesv1connect.RulesServiceName && slices.Contains(a.fn.procedures, r.procedure) {
			svc, err := a.initRules(ctx)
			a.rules = svc
			return err
		}
	}
	return nil
}

// initRetention deletes expired readings in the background (both stores
// implement store.Expirer, docs/RULES.md).
func (a *App) initRetention(context.Context) (*rules.Retainer, error) {
	rs, err := a.rulesStore()
	if err != nil {
		return nil, err
	}
	ex, ok := a.store.Store.(store.Expirer)
	if !ok {
		return nil, fmt.Errorf("store %s does not support retention", a.cfg.Store.kind())
	}
	c := a.cfg.Rules
	r := rules.NewRetainer(a.log.With("component", "retention"), rs, ex, rules.RetentionConfig{
		Raw: c.RawRetention, Minute: c.MinuteRetention, Interval: c.RetentionInterval,
	}, a.metrics)
	a.addRunner("retention", r.Run)
	return r, nil
}
