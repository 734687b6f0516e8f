package app

import (
	"context"
	"errors"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/store"
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
	h := telemetry.Handler(p.Handle)
	if s, ok := a.store.Store.(store.Syncer); ok && a.bus.wal != nil {
		// Behind the write-ahead log the store commits without an fsync
		// each; the log checkpoints only what the store's Sync made durable.
		a.bus.wal.SetSyncApplied(func() error { return s.Sync(context.Background()) })
		inner := h
		h = func(ctx context.Context, recs []*busv1.Record) error { return inner(store.DeferSync(ctx), recs) }
	}
	a.addRunner("pipeline", func(ctx context.Context) error { return sub.Subscribe(ctx, h) })
	if dls := a.bus.deadLetterSub; dls != nil {
		st := a.store.Store
		a.addRunner("deadletters", func(ctx context.Context) error { return dls.SubscribeDeadLetters(ctx, st.WriteDeadLetters) })
	}
	return p, nil
}
