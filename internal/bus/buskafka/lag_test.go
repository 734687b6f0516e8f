//go:build cgo

package buskafka_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestSubscriber_LagFallsToZeroOnceCommitted: on the real broker, records the
// group has not committed show as lag (from librdkafka's statistics), and
// the lag falls to 0 once they are handled.
func TestSubscriber_LagFallsToZeroOnceCommitted(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := strconv.FormatInt(time.Now().UnixNano(), 36)
	cfg := buskafka.Config{Brokers: testenv.KafkaBrokers(t), Topic: "test.lag." + n, Group: "test-lag-" + n, Partitions: 2, ReplicationFactor: 1}
	p, err := buskafka.NewProducer(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	var recs []*busv1.Record
	for i := range int64(20) {
		recs = append(recs, bustest.Rec(i%4, 1, i))
	}
	if err := p.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	s, err := buskafka.NewSubscriber(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Lag(); ok {
		t.Fatal("lag reported before subscribing")
	}
	var accept atomic.Bool
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(ctx, func(context.Context, []*busv1.Record) error {
			if accept.Load() {
				return nil
			}
			return errors.New("not yet")
		})
	}()
	wait := func(want int64) {
		t.Helper()
		for ctx.Err() == nil {
			if lag, ok := s.Lag(); ok && lag == want {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		lag, ok := s.Lag()
		t.Fatalf("lag %d (reported %v), want %d", lag, ok, want)
	}
	wait(20)
	accept.Store(true)
	wait(0)
	cancel()
	<-done
}
