package storeopensearch_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// BenchmarkExpireWhileIngesting is the OpenSearch twin of the embedded
// store's benchmark of the same name: it loads expired readings into a real
// node (IOT_TEST_OPENSEARCH_URL, shared-index mode, 1,000 sensors), then
// measures ingest (one writer, bulk batches of 1,000 new readings, as the
// pipeline writes) in alternating two-second windows: A ingest alone, B
// ingest while retention runs with the runner's defaults (steps of 2,000
// readings, 20 ms apart), until every expired reading is gone.
// IOT_BENCH_EXPIRED sets how many expired readings are loaded first
// (default 500,000).
//
//	go test -run '^$' -bench ExpireWhileIngesting -benchtime 1x ./internal/store/storeopensearch/
func BenchmarkExpireWhileIngesting(b *testing.B) {
	expired := 500_000
	if v, err := strconv.Atoi(os.Getenv("IOT_BENCH_EXPIRED")); err == nil && v > 0 {
		expired = v
	}
	const sensors = 1000
	ctx := context.Background()
	s, prefix := openPrefixed(b, "shared")
	count := func() (int64, error) { // raw readings left (rollups live in another index)
		var c struct {
			Count int64 `json:"count"`
		}
		res, err := http.Get(testenv.OpenSearchURL(b) + "/" + prefix + "-readings*/_count")
		if err != nil {
			return 0, err
		}
		defer res.Body.Close()
		err = json.NewDecoder(res.Body).Decode(&c)
		return c.Count, err
	}
	old := time.Now().Add(-30 * 24 * time.Hour).UnixNano()
	rs := make([]store.Reading, 5000)
	for i := 0; i < expired; i += len(rs) {
		for j := range rs {
			n := i + j
			rs[j] = store.Reading{DeviceID: 1, SensorID: int64(n%sensors) + 1, TimeNS: old + int64(n)*int64(time.Millisecond), Value: store.Value{Kind: store.KindDouble, Double: float64(n)}}
		}
		if err := s.Write(ctx, rs); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if n, err := count(); err != nil || n != int64(expired) {
		b.Fatalf("loaded %d readings (%v), want %d", n, err, expired)
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
				batch[j] = store.Reading{DeviceID: 1, SensorID: int64(seq%sensors) + 1, TimeNS: time.Now().UnixNano() + int64(seq), Value: store.Value{Kind: store.KindDouble, Double: 1}}
			}
			if err := s.Write(ctx, batch); err != nil {
				b.Fatal(err)
			}
			n += len(batch)
		}
		return n
	}
	const window = 2 * time.Second
	b.ResetTimer()
	var aN, bN, deleted int
	var aT, bT time.Duration
	for deleted < expired {
		aN += ingest(window)
		aT += window
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
		bN += ingest(window)
		bT += window
		close(stop)
		deleted += <-done
		if b.Failed() {
			return
		}
	}
	b.StopTimer()
	if err := s.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	if n, err := count(); err != nil || n != int64(aN+bN) {
		b.Fatalf("%d readings left (%v), want the %d ingested during the run", n, err, aN+bN)
	}
	ra, rb := float64(aN)/aT.Seconds(), float64(bN)/bT.Seconds()
	b.ReportMetric(ra, "ingest/s-alone")
	b.ReportMetric(rb, "ingest/s-with-retention")
	b.ReportMetric(rb/ra, "ratio")
	b.ReportMetric(float64(deleted)/bT.Seconds(), "deleted/s")
}
