package pipeline_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/internal/testenv"
	"github.com/iotplatform/iotplatform/services/pipeline"
)

// TestKafka_ConsumerGroupStoresEverythingOnce runs two pipelines in one
// consumer group on a real broker: every record is stored exactly once,
// bad ones are dead-lettered, and a replay does not duplicate.
func TestKafka_ConsumerGroupStoresEverythingOnce(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	log := slog.New(slog.DiscardHandler)
	id := rand.Int64N(1 << 30)
	cfg := buskafka.Config{Brokers: brokers, Topic: fmt.Sprintf("iot.test.pipeline.%d", id), Group: fmt.Sprintf("pipeline-test-%d", id), Partitions: 4}
	prod, err := buskafka.NewProducer(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	if err := prod.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := storeembedded.Open(ctx, log, storeembedded.Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ss := &sensors{m: map[int64]registry.Sensor{}}
	for s := int64(1); s <= 20; s++ {
		ss.m[s] = registry.Sensor{ID: s, DeviceID: 10 + s%4, Type: registry.TypeDouble}
	}
	var handled [2]atomic.Int64
	var wg sync.WaitGroup
	runCtx, stop := context.WithCancel(ctx)
	for i := range 2 {
		sub, err := buskafka.NewSubscriber(log, cfg)
		if err != nil {
			t.Fatal(err)
		}
		p := pipeline.New(log, ss, st, pipeline.Config{}, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = sub.Subscribe(runCtx, func(ctx context.Context, recs []*busv1.Record) error {
				handled[i].Add(int64(len(recs)))
				return p.Handle(ctx, recs)
			})
		}()
	}
	defer func() { stop(); wg.Wait() }()

	const n = 2000
	var recs []*busv1.Record
	for i := range n {
		r := dbl(int64(i%20)+1, int64(1e18)+int64(i), float64(i))
		r.DeviceId = 10 + r.SensorId%4 // four keys, spread over the partitions
		recs = append(recs, r)
	}
	recs = append(recs, &busv1.Record{DeviceId: 11, SensorId: 1, TimestampNs: 5, Value: &busv1.Record_StringValue{StringValue: "x"}})
	if err := prod.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		total := 0
		for s := int64(1); s <= 20; s++ {
			bs, err := st.Aggregate(ctx, store.AggregateQuery{SensorID: s, FromNS: 0, ToNS: 2e18, Interval: 1000000 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range bs {
				total += int(b.Count)
			}
		}
		return total
	}
	waitFor := func(what string, cond func() bool) {
		for !cond() {
			select {
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s (stored %d, handled %d+%d)", what, count(), handled[0].Load(), handled[1].Load())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	waitFor("all readings", func() bool { return count() == n })
	// The dead letter may land just after the last reading is counted.
	var dls []store.DeadLetter
	waitFor("the dead letter", func() bool {
		dls, _, err = st.ListDeadLetters(ctx, store.DeadLetterQuery{})
		return err != nil || len(dls) > 0
	})
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v (%v), want the string value for the double sensor", dls, err)
	}
	// Replay the records of device 11, then a sentinel of device 11 (same
	// key, same partition, so it is handled after the replay).
	var replay []*busv1.Record
	for _, r := range recs[:n] {
		if r.DeviceId == 11 {
			replay = append(replay, r)
		}
	}
	sentinel := dbl(1, 1, 42)
	sentinel.DeviceId = 11
	if err := prod.Publish(ctx, append(replay, sentinel)); err != nil {
		t.Fatal(err)
	}
	waitFor("the sentinel", func() bool {
		rs, _, _ := st.List(ctx, store.ListQuery{SensorID: 1, FromNS: 1, ToNS: 2})
		return len(rs) == 1
	})
	if got := count(); got != n+1 {
		t.Errorf("after replay %d readings stored, want %d (replay must not duplicate)", got, n+1)
	}
	t.Logf("records handled per group member: %d / %d", handled[0].Load(), handled[1].Load())
}
