package ingest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
)

type oneSensor struct{}

func (oneSensor) GetSensor(_ context.Context, id int64) (registry.Sensor, error) {
	if id != 5 {
		return registry.Sensor{}, fmt.Errorf("sensor %d: %w", id, registry.ErrNotFound)
	}
	return registry.Sensor{ID: 5, DeviceID: 1, Type: registry.TypeDouble}, nil
}

type okBus struct{}

func (okBus) Publish(context.Context, []*busv1.Record) error { return nil }

// TestMetrics_EveryEdgeStepCountsRefusals: the decode and validate steps
// count refused batches whichever edge calls them — MQTT calls
// DecodePayload and Validate apart, IngestService DecodeProto — and
// Publish counts accepted readings.
func TestMetrics_EveryEdgeStepCountsRefusals(t *testing.T) {
	s := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{}, oneSensor{}, okBus{}, nil, prometheus.NewRegistry())
	refused := func(p Protocol, class string) float64 {
		return testutil.ToFloat64(s.m.refusedBatches.WithLabelValues(string(p), class))
	}
	if _, err := s.DecodePayload(ProtocolMQTT, FormatAny, []byte("not readings")); err == nil {
		t.Fatal("garbage decoded")
	}
	rs, err := s.DecodePayload(ProtocolMQTT, FormatAny, []byte(`{"sensor_id": 99, "value": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Validate(context.Background(), 1, ProtocolMQTT, rs); err == nil {
		t.Fatal("unknown sensor validated")
	}
	if got, got2 := refused(ProtocolMQTT, "malformed"), refused(ProtocolMQTT, "rejected"); got != 1 || got2 != 1 {
		t.Fatalf("mqtt refused batches malformed=%v rejected=%v, want 1 and 1", got, got2)
	}
	if _, err := s.DecodeProto(ProtocolGRPC, []*ingestv1.Reading{{SensorId: 5}}); err == nil {
		t.Fatal("a reading without a value decoded")
	}
	if got := refused(ProtocolGRPC, "malformed"); got != 1 {
		t.Fatalf("grpc refused malformed = %v, want 1", got)
	}
	if n, err := s.IngestPayload(context.Background(), 1, ProtocolHTTP, FormatJSON, []byte(`[{"sensor_id": 5, "value": 1}, {"sensor_id": 5, "value": 2}]`)); err != nil || n != 2 {
		t.Fatalf("ingest: %d %v", n, err)
	}
	if got := testutil.ToFloat64(s.m.readings.WithLabelValues(string(ProtocolHTTP), "accepted")); got != 2 {
		t.Fatalf("accepted readings %v, want 2", got)
	}
	if got := refused(ProtocolHTTP, "malformed") + refused(ProtocolHTTP, "rejected"); got != 0 {
		t.Fatalf("an accepted batch counted as refused: %v", got)
	}
}

// TestFormatOf_OneDecisionForEveryEdge: a declared media type decides, an
// undeclared payload is sniffed, anything else is unsupported.
func TestFormatOf_OneDecisionForEveryEdge(t *testing.T) {
	for mt, want := range map[string]Format{"": FormatAny, MediaJSON: FormatJSON, "application/json; charset=utf-8": FormatJSON,
		"application/x-protobuf": FormatProto, "application/protobuf": FormatProto} {
		if f, ok := FormatOf(mt); !ok || f != want {
			t.Errorf("FormatOf(%q) = %v %v, want %v", mt, f, ok, want)
		}
	}
	for _, mt := range []string{"text/plain", "application/xml", ";;"} {
		if _, ok := FormatOf(mt); ok {
			t.Errorf("FormatOf(%q) accepted", mt)
		}
	}
}
