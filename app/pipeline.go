package app

import (
	"context"
	"errors"

	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/pipeline"
)

// initPipeline consumes the bus into the store (and, on Kafka, the
// dead-letter topic into the store).
func (a *App) initPipeline(context.Context) (*pipeline.Pipeline, error) {
	if a.bus.sub == nil || a.store == nil {
		return nil, errors.New("pipeline role needs a bus subscriber and a store")
	}
	p := pipeline.New(a.log.With("component", "pipeline"), a.reg, telemetry.Writer(a.store.Store), pipeline.Config{SensorCacheTTL: a.cfg.Ingest.SensorCacheTTL}, a.metrics)
	sub := a.bus.sub
	a.registerBusLag()
	a.addRunner("pipeline", func(ctx context.Context) error { return sub.Subscribe(ctx, telemetry.Handler(p.Handle)) })
	if dls := a.bus.deadLetterSub; dls != nil {
		st := a.store.Store
		a.addRunner("deadletters", func(ctx context.Context) error { return dls.SubscribeDeadLetters(ctx, st.WriteDeadLetters) })
	}
	return p, nil
}
