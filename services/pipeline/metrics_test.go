package pipeline_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
)

// TestHandle_OperatorMetrics: dead letters are counted by reason code (no
// ids in labels), and each stored reading's apply lag and the store write
// are observed.
func TestHandle_OperatorMetrics(t *testing.T) {
	p, _, _, reg := setup(t)
	received := time.Now().Add(-2 * time.Second).UnixNano()
	ok := dbl(1, 100, 1.5)
	ok.ReceiveTimeNs = received
	recs := []*busv1.Record{ok, dbl(2, 101, 2.5), dbl(99, 100, 1), dbl(98, 100, 1)}
	if err := p.Handle(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP iot_pipeline_dead_letters_total Readings the pipeline dead-lettered, by reason code (unknown_sensor, invalid_value).
# TYPE iot_pipeline_dead_letters_total counter
iot_pipeline_dead_letters_total{reason="invalid_value"} 1
iot_pipeline_dead_letters_total{reason="unknown_sensor"} 2
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "iot_pipeline_dead_letters_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(reg, "iot_store_write_seconds"); n != 1 {
		t.Errorf("iot_store_write_seconds series: %d", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		switch mf.GetName() {
		case "iot_pipeline_apply_lag_seconds":
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleCount() != 1 || h.GetSampleSum() < 2 || h.GetSampleSum() > 60 {
				t.Errorf("apply lag: %d samples, sum %v; want the one stored reading at ~2 s", h.GetSampleCount(), h.GetSampleSum())
			}
		case "iot_store_write_seconds":
			if c := mf.GetMetric()[0].GetHistogram().GetSampleCount(); c != 1 {
				t.Errorf("store writes observed: %d, want 1", c)
			}
		}
	}
}
