package storeembedded_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/internal/store/storetest"
)

func open(t testing.TB, path string) *storeembedded.Store {
	t.Helper()
	s, err := storeembedded.Open(context.Background(), slog.New(slog.DiscardHandler), storeembedded.Config{Path: path})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := open(t, filepath.Join(t.TempDir(), "readings.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopenKeepsReadings(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readings.db")
	ctx := context.Background()
	s := open(t, path)
	r := store.Reading{DeviceID: 1, SensorID: 2, TimeNS: 3, Value: store.Value{Kind: store.KindLong, Long: 4}}
	if err := s.Write(ctx, []store.Reading{r}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = open(t, path)
	defer s.Close()
	got, err := s.Latest(ctx, []int64{2})
	if err != nil || len(got) != 1 || got[0].Value.Long != 4 {
		t.Fatalf("after reopen Latest = %+v, %v; want the written reading", got, err)
	}
}

func TestWriteAfterCloseFails(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "readings.db"))
	s.Close()
	if err := s.Write(context.Background(), []store.Reading{{SensorID: 1, Value: store.Value{Kind: store.KindLong}}}); err == nil {
		t.Fatal("Write after Close succeeded")
	}
}
