package storeembedded_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
)

// TestWALStaysBoundedUnderLoad keeps writers and readers (Latest, List)
// busy and checks the write-ahead log never outgrows its documented bound
// (WALMaxBytes plus one commit's pages; asserted as 4 × WALMaxBytes) while
// the checkpoints empty many times that much.
func TestWALStaysBoundedUnderLoad(t *testing.T) {
	const maxBytes = 256 << 10
	const bound = 4 * maxBytes
	ctx := context.Background()
	s, err := storeembedded.Open(ctx, slog.New(slog.DiscardHandler), storeembedded.Config{
		Path: filepath.Join(t.TempDir(), "readings.db"), WALMaxBytes: maxBytes, MaxGroup: 2000,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var (
		maxSeen atomic.Int64
		ts      atomic.Int64
		stop    = make(chan struct{})
		readers sync.WaitGroup
		writers sync.WaitGroup
	)
	observe := func() {
		if v := s.WALSize(); v > maxSeen.Load() {
			maxSeen.Store(v)
		}
	}
	for i := 0; i < 4; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Latest(ctx, []int64{1, 2, 3, 4}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := s.List(ctx, store.ListQuery{SensorID: 1 + int64(i), Limit: 100, Order: store.Descending}); err != nil {
					t.Error(err)
					return
				}
				observe()
			}
		}()
	}
	for w := 0; w < 8; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := 0; s.WALLogged() < 6*bound && n < 10_000; n++ {
				rs := make([]store.Reading, 50)
				for i := range rs {
					rs[i] = store.Reading{DeviceID: 1, SensorID: 1 + int64(i%4), TimeNS: ts.Add(1), Value: store.Value{Kind: store.KindDouble, Double: float64(i)}}
				}
				if err := s.Write(ctx, rs); err != nil {
					t.Error(err)
					return
				}
				observe()
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	done, notDone := s.WALCheckpoints()
	t.Logf("readings=%d max_wal=%d logged=%d checkpoints=%d incomplete=%d", ts.Load(), maxSeen.Load(), s.WALLogged(), done, notDone)
	if s.WALLogged() < 6*bound {
		t.Fatalf("workload logged only %d bytes; the test proves nothing below %d", s.WALLogged(), 6*bound)
	}
	if m := maxSeen.Load(); m > bound {
		t.Fatalf("write-ahead log reached %d bytes, bound is %d", m, bound)
	}
}
