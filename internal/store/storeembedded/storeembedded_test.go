package storeembedded_test

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/deadletter"
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

// TestOpenMigratesReadingsWithoutSeq: a data dir written before readings
// had a seq opens with its readings kept (seq 0), and same-instant readings
// can then be added beside them.
// TestOpenMigratesDeadLettersWithoutKey: a store from before dead letters
// had keys keeps its letters and keeps a keyed letter written twice once.
func TestOpenMigratesDeadLettersWithoutKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readings.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE dead_letters (id INTEGER PRIMARY KEY AUTOINCREMENT, device_id INTEGER NOT NULL,
  sensor_id INTEGER NOT NULL, protocol TEXT NOT NULL, reason TEXT NOT NULL, payload BLOB, time_ns INTEGER NOT NULL);
INSERT INTO dead_letters (device_id, sensor_id, protocol, reason, time_ns) VALUES (1, 2, 'http', 'old', 5);`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	l := deadletter.Letter{DeviceID: 1, SensorID: 2, Protocol: "mqtt", Reason: "new", TimeNS: 6, Key: "k"}
	for range 2 {
		if err := s.WriteDeadLetters(ctx, []deadletter.Letter{l}); err != nil {
			t.Fatalf("WriteDeadLetters: %v", err)
		}
	}
	got, _, err := s.ListDeadLetters(ctx, store.DeadLetterQuery{})
	if err != nil || len(got) != 2 || got[0].Reason != "new" || got[1].Reason != "old" {
		t.Fatalf("after migration ListDeadLetters = %+v, %v; want the new letter once and the old one", got, err)
	}
}

func TestOpenMigratesReadingsWithoutSeq(t *testing.T) {
	path := filepath.Join(t.TempDir(), "readings.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE readings (sensor_id INTEGER NOT NULL, ts INTEGER NOT NULL, device_id INTEGER NOT NULL,
  kind INTEGER NOT NULL, v, recv INTEGER NOT NULL, proto TEXT NOT NULL, PRIMARY KEY (sensor_id, ts)) WITHOUT ROWID;
INSERT INTO readings VALUES (2, 3, 1, 2, 4, 5, 'http');`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s := open(t, path)
	defer s.Close()
	ctx := context.Background()
	if err := s.Write(ctx, []store.Reading{{DeviceID: 1, SensorID: 2, TimeNS: 3, Seq: 1, Value: store.Value{Kind: store.KindLong, Long: 6}}}); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, _, err := s.List(ctx, store.ListQuery{SensorID: 2})
	if err != nil || len(got) != 2 || got[0].Value.Long != 4 || got[0].Seq != 0 || got[1].Value.Long != 6 {
		t.Fatalf("after migration List = %+v, %v; want the old reading (seq 0) and the new one", got, err)
	}
}
