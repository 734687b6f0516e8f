package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/iotplatform/iotplatform/gen/iot/rules/v1/rulesv1connect"
	"github.com/iotplatform/iotplatform/internal/gengrpc/rulesv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/services/rules"
)

// RulesConfig configures rules, alerts, webhooks and retention (docs/RULES.md): its flags are
// declared in services/rules (Flags).
type RulesConfig = rules.Flags

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
