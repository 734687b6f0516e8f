package storeembedded

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/store"
)

// TestDeferredWrites_DurableOnSync: a plain Write returns after an fsync of
// the WAL file; a write under store.DeferSync commits (readable at once)
// without one; Sync then makes it durable with one fsync.
func TestDeferredWrites_DurableOnSync(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, slog.New(slog.DiscardHandler), Config{Path: filepath.Join(t.TempDir(), "d.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := func(ts int64) []store.Reading {
		return []store.Reading{{DeviceID: 1, SensorID: 1, TimeNS: ts, Value: store.Value{Kind: store.KindDouble, Double: 1}, Protocol: "http"}}
	}
	before := s.walSyncs.Load()
	if err := s.Write(ctx, r(1)); err != nil {
		t.Fatal(err)
	}
	if got := s.walSyncs.Load(); got != before+1 {
		t.Fatalf("WAL fsyncs after a plain write: %d, want %d", got, before+1)
	}
	if err := s.Write(store.DeferSync(ctx), r(2)); err != nil {
		t.Fatal(err)
	}
	if got := s.walSyncs.Load(); got != before+1 {
		t.Fatalf("WAL fsyncs after a deferred write: %d, want still %d", got, before+1)
	}
	got, _, err := s.List(ctx, store.ListQuery{SensorID: 1})
	if err != nil || len(got) != 2 {
		t.Fatalf("List = %d readings, %v; want both, the deferred one visible at once", len(got), err)
	}
	if err := s.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := s.walSyncs.Load(); got != before+2 {
		t.Fatalf("WAL fsyncs after Sync: %d, want %d", got, before+2)
	}
}
