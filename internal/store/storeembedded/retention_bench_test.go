package storeembedded

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

// BenchmarkExpireWhileIngesting measures ingest (batches of 1,000 new
// readings, one writer as the pipeline) while retention deletes expired
// readings (steps of 2,000 rows, 20 ms apart: the defaults of the retention
// runner), against ingest alone, in alternating one-second windows of one
// run (A: ingest alone, B: ingest + retention) until every expired reading
// is gone. IOT_BENCH_EXPIRED sets how many expired readings are loaded
// first (default 1,000,000 over 1,000 sensors).
//
//	go test -run '^$' -bench ExpireWhileIngesting -benchtime 1x ./internal/store/storeembedded/
func BenchmarkExpireWhileIngesting(b *testing.B) {
	expired := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("IOT_BENCH_EXPIRED")); err == nil && v > 0 {
		expired = v
	}
	ctx := context.Background()
	s, err := Open(ctx, slog.New(slog.DiscardHandler), Config{Path: filepath.Join(b.TempDir(), "r.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	old := time.Now().Add(-30 * 24 * time.Hour).UnixNano()
	rs := make([]store.Reading, 10000)
	for i := 0; i < expired; i += len(rs) {
		for j := range rs {
			n := i + j
			rs[j] = store.Reading{DeviceID: 1, SensorID: int64(n%1000) + 1, TimeNS: old + int64(n)*int64(time.Millisecond), Value: store.Value{Kind: store.KindDouble, Double: float64(n)}}
		}
		if err := s.Write(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	for { // let the compactor fold the loaded minutes (deletion waits for it)
		var n int
		s.r.QueryRow("SELECT COUNT(*) FROM rollups_dirty").Scan(&n)
		if n == 0 {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cut := time.Now().Add(-24 * time.Hour).UnixNano()
	policy := store.RetentionPolicy{RawBefore: func(int64) int64 { return cut }}
	batch := make([]store.Reading, 1000)
	seq := 0
	ingest := func(d time.Duration) int {
		n := 0
		for end := time.Now().Add(d); time.Now().Before(end); {
			for j := range batch {
				seq++
				batch[j] = store.Reading{DeviceID: 1, SensorID: int64(seq%1000) + 1, TimeNS: time.Now().UnixNano() + int64(seq), Value: store.Value{Kind: store.KindDouble, Double: 1}}
			}
			if err := s.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			n += len(batch)
		}
		return n
	}
	b.ResetTimer()
	var aN, bN, deleted int
	var aT, bT time.Duration
	for deleted < expired {
		aN += ingest(time.Second)
		aT += time.Second
		stop := make(chan struct{})
		done := make(chan int)
		go func() {
			total := 0
			defer func() { done <- total }()
			for {
				select {
				case <-stop:
					return
				default:
				}
				n, err := s.Expire(ctx, policy, 2000)
				if err != nil {
					b.Error(err)
					return
				}
				total += n
				if n == 0 && total+deleted >= expired {
					return
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
		bN += ingest(time.Second)
		bT += time.Second
		close(stop)
		deleted += <-done
	}
	b.StopTimer()
	ra, rb := float64(aN)/aT.Seconds(), float64(bN)/bT.Seconds()
	b.ReportMetric(ra, "ingest/s-alone")
	b.ReportMetric(rb, "ingest/s-with-retention")
	b.ReportMetric(rb/ra, "ratio")
	b.ReportMetric(float64(deleted)/bT.Seconds(), "deleted/s")
}
