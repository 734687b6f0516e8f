package app

import (
	"context"
	"errors"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
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
	p := pipeline.New(a.log.With("component", "pipeline"), a.reg, telemetry.Writer(a.store.Store), pipeline.Config{SensorCacheTTL: a.cfg.Ingest.SensorCacheTTL, Sensors: a.sensorCache()}, a.metrics)
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

// sensorCache is the process's one sensor cache in front of the registry,
// shared by the ingest path and the pipeline when both run here: each
// sensor in use is refreshed once per round instead of twice, and the
// pipeline's Forget of a sensor deleted in this process makes ingest refuse
// its readings at once. Modules are initialised one at a time.
func (a *App) sensorCache() *registry.SensorCache {
	if a.sensors == nil {
		a.sensors = registry.NewSensorCache(a.reg, a.cfg.Ingest.SensorCacheTTL)
	}
	return a.sensors
}
