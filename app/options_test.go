package app

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
)

// TestWithBus_TheGivenBusReplacesTheConfiguredOne: on the embedded bus the
// ingest role without the pipeline is refused, but with WithBus the bus is
// the embedder's: New accepts the role set, the bus module hands out the
// given publisher (and no write-ahead log is opened), and a record
// published through what the module provides reaches the embedder's
// subscriber.
func TestWithBus_TheGivenBusReplacesTheConfiguredOne(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dir := t.TempDir()
	cfg, err := ParseConfig("--roles", "core,ingest", "--data-dir", dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := New(log, cfg); err == nil || !strings.Contains(err.Error(), "--roles (IOT_ROLES)") {
		t.Fatalf("ingest without pipeline on the embedded bus: got %v, want the roles refused", err)
	}
	b := busembedded.New(time.Second)
	got := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Subscribe(ctx, func(_ context.Context, recs []*busv1.Record) error { got <- len(recs); return nil })
	for !b.Subscribed() {
		time.Sleep(time.Millisecond)
	}
	a, err := New(log, cfg, WithBus(b, nil))
	if err != nil {
		t.Fatalf("with WithBus: %v", err)
	}
	p, err := a.initBus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if p.pub != b || p.sub != nil || p.wal != nil || p.deadLetters != nil {
		t.Fatalf("bus module: pub %v sub %v wal %v, want the given bus only", p.pub, p.sub, p.wal)
	}
	if _, err := os.Stat(filepath.Join(dir, "wal")); !os.IsNotExist(err) {
		t.Fatalf("a write-ahead log was opened beside the given bus: %v", err)
	}
	if err := p.pub.Publish(ctx, []*busv1.Record{{DeviceId: 1, SensorId: 2}}); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != 1 {
		t.Fatalf("subscriber got %d records, want 1", n)
	}
}
