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
