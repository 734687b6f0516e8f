package telemetry

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/iotplatform/iotplatform/internal/store"
)

// Store wraps s so the query path's reads are spans ("store.list",
// "store.aggregate", "store.latest", "store.list_dead_letters") in the
// caller's trace; writes and the rest pass through. With tracing off it
// returns s itself.
func Store(s store.Store) store.Store {
	if !Enabled() || s == nil {
		return s
	}
	return tracedStore{s}
}

type tracedStore struct{ store.Store }

func startRead(ctx context.Context, name string, sensor int64) (context.Context, trace.Span) {
	ctx, span := Start(ctx, name, trace.SpanKindClient)
	if span.IsRecording() && sensor != 0 {
		span.SetAttributes(attribute.Int64("iot.sensor.id", sensor))
	}
	return ctx, span
}

func endRead(span trace.Span, n int, err error) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("iot.store.results", n))
		Fail(span, err)
	}
	span.End()
}

func (s tracedStore) List(ctx context.Context, q store.ListQuery) ([]store.Reading, bool, error) {
	ctx, span := startRead(ctx, "store.list", q.SensorID)
	rs, more, err := s.Store.List(ctx, q)
	endRead(span, len(rs), err)
	return rs, more, err
}

func (s tracedStore) Aggregate(ctx context.Context, q store.AggregateQuery) ([]store.Bucket, error) {
	ctx, span := startRead(ctx, "store.aggregate", q.SensorID)
	bs, err := s.Store.Aggregate(ctx, q)
	endRead(span, len(bs), err)
	return bs, err
}

func (s tracedStore) Latest(ctx context.Context, sensorIDs []int64) ([]store.Reading, error) {
	ctx, span := startRead(ctx, "store.latest", 0)
	rs, err := s.Store.Latest(ctx, sensorIDs)
	endRead(span, len(rs), err)
	return rs, err
}

func (s tracedStore) ListDeadLetters(ctx context.Context, q store.DeadLetterQuery) ([]store.DeadLetter, string, error) {
	ctx, span := startRead(ctx, "store.list_dead_letters", 0)
	ds, next, err := s.Store.ListDeadLetters(ctx, q)
	endRead(span, len(ds), err)
	return ds, next, err
}
