package buswal_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
)

// TestOpen_ReadsSegmentsWrittenBeforeTraceContext: a segment written by the
// log before records carried a traceparent (testdata, made with that code)
// is replayed intact, without a trace context.
func TestOpen_ReadsSegmentsWrittenBeforeTraceContext(t *testing.T) {
	dir := t.TempDir()
	old, err := os.ReadFile("testdata/before-traceparent/00000000000000000000.wal")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "00000000000000000000.wal"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	l := open(t, buswal.Config{Dir: dir})
	defer l.Close()
	seen := drain(t, l, 3)
	if len(seen) != 3 {
		t.Fatalf("replayed %d records, want 3", len(seen))
	}
	for i, r := range seen {
		n := int64(i + 1)
		if r.GetDeviceId() != 5 || r.GetSensorId() != 50 || r.GetTimestampNs() != n || r.GetDoubleValue() != float64(n)/2 || r.GetSeq() != n || r.GetProtocol() != "http" {
			t.Fatalf("record %d mangled: %v", i, r)
		}
		if r.GetTraceparent() != "" {
			t.Fatalf("old record got a trace context: %q", r.GetTraceparent())
		}
	}
}

// TestReopen_KeepsTraceContext: the traceparent is written into the record
// on disk and survives a restart before the record was applied.
func TestReopen_KeepsTraceContext(t *testing.T) {
	dir := t.TempDir()
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	l := open(t, buswal.Config{Dir: dir})
	traced := &busv1.Record{DeviceId: 1, SensorId: 2, TimestampNs: 1, Value: &busv1.Record_LongValue{LongValue: 1}, Traceparent: tp}
	plain := &busv1.Record{DeviceId: 1, SensorId: 2, TimestampNs: 2, Value: &busv1.Record_LongValue{LongValue: 2}}
	if err := l.Publish(context.Background(), []*busv1.Record{traced, plain}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = open(t, buswal.Config{Dir: dir})
	defer l.Close()
	seen := drain(t, l, 2)
	if len(seen) != 2 || seen[0].GetTraceparent() != tp || seen[1].GetTraceparent() != "" {
		t.Fatalf("after reopen: %v", seen)
	}
}
