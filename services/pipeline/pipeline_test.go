package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/structpb"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/services/pipeline"
)

type sensors struct {
	m   map[int64]registry.Sensor
	err error
}

func (s *sensors) GetSensor(_ context.Context, id int64) (registry.Sensor, error) {
	if s.err != nil {
		return registry.Sensor{}, s.err
	}
	v, ok := s.m[id]
	if !ok {
		return registry.Sensor{}, fmt.Errorf("sensor %d: %w", id, registry.ErrNotFound)
	}
	return v, nil
}

func setup(t *testing.T) (*pipeline.Pipeline, *storeembedded.Store, *sensors, *prometheus.Registry) {
	t.Helper()
	st, err := storeembedded.Open(context.Background(), slog.New(slog.DiscardHandler), storeembedded.Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ss := &sensors{m: map[int64]registry.Sensor{
		1: {ID: 1, DeviceID: 10, Type: registry.TypeDouble},
		2: {ID: 2, DeviceID: 10, Type: registry.TypeLong},
		3: {ID: 3, DeviceID: 10, Type: registry.TypeObject},
	}}
	reg := prometheus.NewRegistry()
	return pipeline.New(slog.New(slog.DiscardHandler), ss, st, pipeline.Config{}, reg), st, ss, reg
}

func dbl(sensor, ts int64, v float64) *busv1.Record {
	return &busv1.Record{DeviceId: 10, SensorId: sensor, TimestampNs: ts, Value: &busv1.Record_DoubleValue{DoubleValue: v}, Protocol: "http"}
}

func TestHandle_StoresAndDeadLetters(t *testing.T) {
	p, st, _, reg := setup(t)
	ctx := context.Background()
	obj, _ := structpb.NewStruct(map[string]any{"a": 1.0})
	recs := []*busv1.Record{
		dbl(1, 100, 1.5),
		{DeviceId: 10, SensorId: 2, TimestampNs: 100, Value: &busv1.Record_LongValue{LongValue: 7}},
		{DeviceId: 10, SensorId: 3, TimestampNs: 100, Value: &busv1.Record_ObjectValue{ObjectValue: obj}},
		dbl(2, 101, 2.5), // type mismatch: long sensor
		dbl(99, 100, 1),  // unknown (deleted) sensor
		{DeviceId: 11, SensorId: 1, TimestampNs: 5}, // other device, no value
	}
	if err := p.Handle(ctx, recs); err != nil {
		t.Fatalf("Handle: %v", err)
	}
	for id, want := range map[int64]int{1: 1, 2: 1, 3: 1} {
		rs, _, err := st.List(ctx, store.ListQuery{SensorID: id})
		if err != nil || len(rs) != want {
			t.Errorf("sensor %d: %d readings (%v), want %d", id, len(rs), err, want)
		}
	}
	dls, _, err := st.ListDeadLetters(ctx, store.DeadLetterQuery{})
	if err != nil {
		t.Fatal(err)
	}
	wantReasons := []string{"belongs to device 10, not 11", "sensor 99 does not exist", "value is double but sensor 2 is declared long"}
	if len(dls) != len(wantReasons) {
		t.Fatalf("dead letters = %+v, want %d", dls, len(wantReasons))
	}
	for i, want := range wantReasons {
		if !strings.Contains(dls[i].Reason, want) {
			t.Errorf("dead letter %d reason %q, want it to mention %q", i, dls[i].Reason, want)
		}
		if len(dls[i].Payload) == 0 {
			t.Errorf("dead letter %d has no payload", i)
		}
	}
	if got := counter(t, reg, "dead_lettered"); got != 3 {
		t.Errorf("dead_lettered metric = %v, want 3", got)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "iot_pipeline_readings_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("metric iot_pipeline_readings_total{result=%q} not found", result)
	return 0
}

func TestHandle_ReplayIsIdempotent(t *testing.T) {
	p, st, _, _ := setup(t)
	ctx := context.Background()
	batch := []*busv1.Record{dbl(1, 1, 1), dbl(1, 2, 2), dbl(1, 3, 3)}
	for range 3 {
		if err := p.Handle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	rs, _, err := st.List(ctx, store.ListQuery{SensorID: 1})
	if err != nil || len(rs) != 3 {
		t.Fatalf("after 3 deliveries: %d readings (%v), want 3", len(rs), err)
	}
}

// TestHandle_RedeliveredDeadLettersKeptOnce: a batch delivered again (its
// store write failed after its dead letters were written, or a replay after
// a crash) keeps each dead letter once; a record that differs only in its
// receive time is another letter.
func TestHandle_RedeliveredDeadLettersKeptOnce(t *testing.T) {
	p, st, _, _ := setup(t)
	ctx := context.Background()
	bad := dbl(99, 1, 1) // unknown sensor
	bad.ReceiveTimeNs = 1000
	batch := []*busv1.Record{dbl(1, 1, 1), bad, dbl(2, 2, 2.5)}
	for range 3 {
		if err := p.Handle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	again := dbl(99, 1, 1)
	again.ReceiveTimeNs = 2000 // the device sent the same reading again
	if err := p.Handle(ctx, []*busv1.Record{again}); err != nil {
		t.Fatal(err)
	}
	dls, _, err := st.ListDeadLetters(ctx, store.DeadLetterQuery{})
	if err != nil || len(dls) != 3 {
		t.Fatalf("after 3 deliveries and one new send: %d dead letters (%v), want 3 (two of the batch, one of the new send)", len(dls), err)
	}
}

func TestHandle_TransientRegistryErrorRedelivers(t *testing.T) {
	p, st, ss, _ := setup(t)
	ctx := context.Background()
	ss.err = errors.New("registry unreachable")
	if err := p.Handle(ctx, []*busv1.Record{dbl(1, 1, 1)}); err == nil {
		t.Fatal("Handle succeeded with the registry down; the batch must be redelivered, not dropped")
	}
	dls, _, _ := st.ListDeadLetters(ctx, store.DeadLetterQuery{})
	rs, _, _ := st.List(ctx, store.ListQuery{SensorID: 1})
	if len(dls) != 0 || len(rs) != 0 {
		t.Errorf("transient failure stored %d readings and %d dead letters, want none", len(rs), len(dls))
	}
	ss.err = nil
	if err := p.Handle(ctx, []*busv1.Record{dbl(1, 1, 1)}); err != nil {
		t.Fatalf("redelivery: %v", err)
	}
}

func TestForget_DeadLettersDeletedSensorAtOnce(t *testing.T) {
	p, st, ss, _ := setup(t)
	ctx := context.Background()
	if err := p.Handle(ctx, []*busv1.Record{dbl(1, 1, 1)}); err != nil {
		t.Fatal(err)
	}
	delete(ss.m, 1)
	p.Forget(1)
	if err := p.Handle(ctx, []*busv1.Record{dbl(1, 2, 2)}); err != nil {
		t.Fatal(err)
	}
	dls, _, _ := st.ListDeadLetters(ctx, store.DeadLetterQuery{SensorID: 1})
	if len(dls) != 1 {
		t.Errorf("dead letters after deletion = %d, want 1", len(dls))
	}
}
