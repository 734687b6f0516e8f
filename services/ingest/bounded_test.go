package ingest_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// deadlinePub records whether Publish got a deadline; a positive bound
// makes it a bus.Bounded.
type deadlinePub struct {
	bound       time.Duration
	hadDeadline bool
}

func (p *deadlinePub) Publish(ctx context.Context, _ []*busv1.Record) error {
	_, p.hadDeadline = ctx.Deadline()
	return nil
}

type boundedPub struct{ deadlinePub }

func (p *boundedPub) PublishTimeout() time.Duration { return p.bound }

type oneSensor struct{}

func (oneSensor) GetSensor(context.Context, int64) (registry.Sensor, error) {
	return registry.Sensor{ID: 1, DeviceID: 1, Type: registry.TypeDouble}, nil
}

// TestPublish_DeadlineOnlyWhenTheBusDoesNotBoundItsWait: Publish makes a
// timeout context of its own only for a bus that does not bound its own
// wait by a timeout at most as long (bus.Bounded).
func TestPublish_DeadlineOnlyWhenTheBusDoesNotBoundItsWait(t *testing.T) {
	for _, tc := range []struct {
		name         string
		pub          interface{ deadline() bool }
		wantDeadline bool
	}{
		{"plain publisher", &plain{}, true},
		{"bounded by the same timeout", &bounded{boundedPub{deadlinePub{bound: time.Second}}}, false},
		{"bounded by a longer timeout", &bounded{boundedPub{deadlinePub{bound: time.Minute}}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var pub interface {
				Publish(context.Context, []*busv1.Record) error
			}
			switch p := tc.pub.(type) {
			case *plain:
				pub = &p.deadlinePub
			case *bounded:
				pub = &p.boundedPub
			}
			s := ingest.New(slog.New(slog.DiscardHandler), ingest.Config{PublishTimeout: time.Second}, oneSensor{}, pub, nil, nil)
			if _, err := s.IngestPayload(context.Background(), 1, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(`{"sensor_id":1,"value":2.5}`)); err != nil {
				t.Fatal(err)
			}
			if got := tc.pub.deadline(); got != tc.wantDeadline {
				t.Fatalf("publish had a deadline: %v, want %v", got, tc.wantDeadline)
			}
		})
	}
}

type plain struct{ deadlinePub }

func (p *plain) deadline() bool { return p.hadDeadline }

type bounded struct{ boundedPub }

func (p *bounded) deadline() bool { return p.hadDeadline }
