package storeembedded

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/iotplatform/iotplatform/internal/store"
)

// BenchmarkWrite measures durable writes of one reading per call from 64
// concurrent callers (group commit), and of 1000-reading batches.
func BenchmarkWrite(b *testing.B) {
	for _, tc := range []struct {
		name  string
		batch int
		same  bool
	}{{"1-reading-distinct-ts", 1, false}, {"1-reading-same-ts", 1, true}, {"1000-readings", 1000, false}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Path: filepath.Join(b.TempDir(), "s.db")})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			var ts atomic.Int64
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				rs := make([]store.Reading, tc.batch)
				for pb.Next() {
					for i := range rs {
						t := ts.Add(1)
						if tc.same {
							t = 1
						}
						rs[i] = store.Reading{DeviceID: 1, SensorID: 1, TimeNS: 1_500_000_000_000_000_000 + t, Value: store.Value{Kind: store.KindDouble, Double: 21.5}, ReceiveTimeNS: t, Protocol: "http"}
					}
					if err := s.Write(context.Background(), rs); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N*tc.batch)/b.Elapsed().Seconds(), "readings/s")
		})
	}
}

// BenchmarkApply measures what the pipeline does behind the write-ahead
// log: one caller writing batches of 20,000 readings (the log's apply
// batch) of 10 sensors, one reading per sensor every millisecond, then the
// idle compaction of the minutes they touched — the store's share of "ack →
// stored".
func BenchmarkApply(b *testing.B) {
	s, err := Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), Config{Path: filepath.Join(b.TempDir(), "s.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const batch = 20_000
	rs := make([]store.Reading, batch)
	t := int64(1_500_000_000_000_000_000)
	b.ResetTimer()
	for range b.N {
		for i := range rs {
			if i%10 == 0 {
				t += 1_000_000
			}
			rs[i] = store.Reading{DeviceID: 1, SensorID: int64(1 + i%10), TimeNS: t, Value: store.Value{Kind: store.KindDouble, Double: float64(i)}, ReceiveTimeNS: t, Protocol: "http"}
		}
		if err := s.Write(context.Background(), rs); err != nil {
			b.Fatal(err)
		}
	}
	for { // fold what is left, as the idle committer would
		n, err := s.compact(64)
		if err != nil {
			b.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "readings/s")
}
