package app

import (
	"context"
	"time"

	"github.com/iotplatform/iotplatform/internal/bus/buswal"
	"github.com/iotplatform/iotplatform/internal/store"
)

// readBarrierWait bounds how long a query waits for the pipeline to apply
// what was acknowledged before it; after that it answers from the store as
// it is.
const readBarrierWait = time.Second

// readBarrier gives queries read-your-writes on the write-ahead log bus: a
// reading acknowledged before a query started is applied before the query
// reads the store.
type readBarrier struct {
	store.Store
	wal *buswal.Log
}

func (r readBarrier) wait(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, readBarrierWait)
	defer cancel()
	_ = r.wal.WaitApplied(ctx)
}

func (r readBarrier) List(ctx context.Context, q store.ListQuery) ([]store.Reading, bool, error) {
	r.wait(ctx)
	return r.Store.List(ctx, q)
}

func (r readBarrier) Aggregate(ctx context.Context, q store.AggregateQuery) ([]store.Bucket, error) {
	r.wait(ctx)
	return r.Store.Aggregate(ctx, q)
}

func (r readBarrier) Latest(ctx context.Context, sensorIDs []int64) ([]store.Reading, error) {
	r.wait(ctx)
	return r.Store.Latest(ctx, sensorIDs)
}

func (r readBarrier) ListDeadLetters(ctx context.Context, q store.DeadLetterQuery) ([]store.DeadLetter, string, error) {
	r.wait(ctx)
	return r.Store.ListDeadLetters(ctx, q)
}
