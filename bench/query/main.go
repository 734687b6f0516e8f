// Command query measures the storage and query targets of the platform:
//
//   - embedded store, one sensor with N readings (default 1,000,000):
//     Aggregate into 1,440 buckets and ListReadings of 1,000 points, p50/p95;
//   - embedded write throughput of group-committed batches;
//   - device ack → visible in Subscribe on the platform run in this
//     process by the app's own constructor (bench/internal/inproc);
//   - with -opensearch-url: the platform's pipeline → OpenSearch (bus
//     batches handed to it through the app's bus seam) vs a raw _bulk of
//     the same documents, in the same run, then its consumer search proxy
//     vs the same query sent straight to OpenSearch.
//
// Usage: go run ./bench/query [-n 1000000] [-opensearch-url http://127.0.0.1:59200]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/app"
	"github.com/iotplatform/iotplatform/bench/internal/inproc"
	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
)

func main() {
	n := flag.Int("n", 1_000_000, "readings of the one sensor")
	iters := flag.Int("iters", 50, "query repetitions")
	osURL := flag.String("opensearch-url", os.Getenv("IOT_TEST_OPENSEARCH_URL"), "OpenSearch URL (empty skips the OpenSearch part)")
	osDocs := flag.Int("os-docs", 200_000, "documents for the OpenSearch comparison")
	flag.Parse()
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	fmt.Printf("machine: %d CPUs, %s/%s, %s\n", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())

	dir, err := os.MkdirTemp("", "benchquery")
	check(err)
	defer os.RemoveAll(dir)
	st, err := storeembedded.Open(ctx, log, storeembedded.Config{Path: filepath.Join(dir, "readings.db")})
	check(err)
	defer st.Close()

	// One day of readings for sensor 1: n points spread evenly.
	day := int64(24 * time.Hour)
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC).UnixNano()
	step := day / int64(*n)
	start := time.Now()
	const batch = 1000
	const writers = 8
	var wg sync.WaitGroup
	next := make(chan int, writers)
	go func() {
		for i := 0; i < *n; i += batch {
			next <- i
		}
		close(next)
	}()
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := make([]store.Reading, 0, batch)
			for i := range next {
				rs = rs[:0]
				for j := i; j < min(i+batch, *n); j++ {
					rs = append(rs, store.Reading{DeviceID: 1, SensorID: 1, TimeNS: t0 + int64(j)*step, Value: store.Value{Kind: store.KindDouble, Double: float64(j % 1000)}, Protocol: "http"})
				}
				check(st.Write(ctx, rs))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("embedded write: %d readings in %v = %.0f readings/s (%d writers x %d-reading batches, durable group commit)\n", *n, el.Round(time.Millisecond), float64(*n)/el.Seconds(), writers, batch)

	aggOnce := func() {
		bs, err := st.Aggregate(ctx, store.AggregateQuery{SensorID: 1, FromNS: t0, ToNS: t0 + day, Interval: time.Minute})
		check(err)
		if len(bs) != 1440 {
			panic(fmt.Sprintf("got %d buckets", len(bs)))
		}
	}
	s := time.Now()
	aggOnce()
	fmt.Printf("embedded Aggregate right after the bulk load (every minute still dirty, raw scan): %v\n", time.Since(s).Round(time.Millisecond))
	time.Sleep(5 * time.Second) // let the idle committer fold the minutes into rollups
	agg := measure(*iters, func() {
		bs, err := st.Aggregate(ctx, store.AggregateQuery{SensorID: 1, FromNS: t0, ToNS: t0 + day, Interval: time.Minute})
		check(err)
		if len(bs) != 1440 {
			panic(fmt.Sprintf("got %d buckets", len(bs)))
		}
	})
	fmt.Printf("embedded Aggregate 1,440 buckets over %d readings: p50 %v p95 %v (target p95 < 50ms)\n", *n, agg(50), agg(95))
	off := 0
	list := measure(*iters*4, func() {
		off = (off + 7919) % (*n - 1000)
		rs, _, err := st.List(ctx, store.ListQuery{SensorID: 1, FromNS: t0 + int64(off)*step, Limit: 1000})
		check(err)
		if len(rs) != 1000 {
			panic("short page")
		}
	})
	fmt.Printf("embedded ListReadings 1,000 points: p50 %v p95 %v (target p95 < 10ms)\n", list(50), list(95))
	lat := measure(*iters*4, func() {
		_, err := st.Latest(ctx, []int64{1})
		check(err)
	})
	fmt.Printf("embedded Latest: p50 %v p95 %v\n", lat(50), lat(95))
	benchLive(ctx, 2000, 100)

	if *osURL != "" {
		benchOpenSearch(ctx, *osURL, *osDocs)
	}
}

// benchOpenSearch measures the pipeline writing to OpenSearch against raw
// _bulk requests of the same documents, then the consumer search proxy
// against the same query sent straight to OpenSearch. The platform runs in
// this process through the app's own constructor with the core, pipeline
// and query roles on OpenSearch; its bus is the app's seam (app.WithBus)
// given an in-process hand-off, so that each bus batch published here runs
// the platform's pipeline (registry validation, storeopensearch bulk) and
// returns when OpenSearch has it.
func benchOpenSearch(ctx context.Context, url string, n int) {
	prefix := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	defer del(url, "/"+prefix+"-*")
	defer del(url, "/_index_template/"+prefix+"-readings")
	b := busembedded.New(time.Minute)
	p, err := inproc.Start([]string{"--roles", "core,pipeline,query", "--store", "opensearch", "--opensearch-url", url,
		"--opensearch-prefix", prefix}, app.WithBus(b, b))
	check(err)
	defer p.Close()
	for !b.Subscribed() {
		time.Sleep(time.Millisecond)
	}
	dev, err := inproc.Provision(p.API, p.Password, 2, "double")
	check(err)
	devID, _ := strconv.ParseInt(dev.ID, 10, 64)
	rawSensor, _ := strconv.ParseInt(dev.Sensors[0], 10, 64)
	pipeSensor, _ := strconv.ParseInt(dev.Sensors[1], 10, 64)
	const batch = 5000
	t0 := time.Now().UnixNano()
	mk := func(sensor int64) [][]*busv1.Record {
		var out [][]*busv1.Record
		for i := 0; i < n; i += batch {
			var b []*busv1.Record
			for j := i; j < min(i+batch, n); j++ {
				b = append(b, &busv1.Record{DeviceId: devID, SensorId: sensor, TimestampNs: t0 + int64(j), Value: &busv1.Record_DoubleValue{DoubleValue: float64(j)}, Protocol: "http", ReceiveTimeNs: t0})
			}
			out = append(out, b)
		}
		return out
	}
	// Raw _bulk of the same documents (same day index, same ids, same bodies).
	raw := mk(rawSensor)
	bodies := make([][]byte, len(raw))
	for i, b := range raw {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, r := range b {
			v := r.GetDoubleValue()
			_ = enc.Encode(map[string]any{"index": map[string]any{"_index": prefix + "-readings-" + time.Unix(0, r.TimestampNs).UTC().Format("20060102"), "_id": storeopensearch.DocID(r.SensorId, r.TimestampNs, r.Seq)}})
			_ = enc.Encode(map[string]any{"sensor_id": r.SensorId, "device_id": r.DeviceId, "ts_ns": r.TimestampNs,
				"timestamp": time.Unix(0, r.TimestampNs).UTC().Format(time.RFC3339Nano), "received": time.Unix(0, r.ReceiveTimeNs).UTC().Format(time.RFC3339Nano),
				"protocol": r.Protocol, "kind": "double", "value_double": v, "value_num": v})
		}
		bodies[i] = buf.Bytes()
	}
	// Alternate one raw bulk and one pipeline batch of the same size, so
	// both see the same index size and node state; sum each side's time.
	recs := mk(pipeSensor)
	var rawT, pipeT time.Duration
	for i := range bodies {
		s := time.Now()
		res, err := http.Post(url+"/_bulk", "application/x-ndjson", bytes.NewReader(bodies[i]))
		check(err)
		res.Body.Close()
		rawT += time.Since(s)
		s = time.Now()
		check(b.Publish(ctx, recs[i]))
		pipeT += time.Since(s)
	}
	const par = 1
	rawRate, pipeRate := float64(n)/rawT.Seconds(), float64(n)/pipeT.Seconds()
	fmt.Printf("opensearch raw _bulk: %d docs in %v = %.0f docs/s (%d-doc bulks, %d in flight)\n", n, rawT.Round(time.Millisecond), rawRate, batch, par)
	fmt.Printf("opensearch pipeline (bus batch -> validate -> storeopensearch bulk): %d in %v = %.0f docs/s; ratio %.2f (target >= 0.8)\n", n, pipeT.Round(time.Millisecond), pipeRate, pipeRate/rawRate)
	refresh(url, prefix+"-readings*")
	token, err := inproc.SignIn(p.API, p.Password)
	check(err)
	benchSearchProxy(url, p.API, token, prefix+"-readings*", pipeSensor, 200)
}

// refresh makes what was indexed searchable.
func refresh(url, index string) {
	res, err := http.Post(url+"/"+index+"/_refresh", "application/json", nil)
	check(err)
	res.Body.Close()
}

func del(url, path string) {
	req, _ := http.NewRequest(http.MethodDelete, url+path, nil)
	if res, err := http.DefaultClient.Do(req); err == nil {
		res.Body.Close()
	}
}

// measure runs fn iters times and returns a percentile function.
func measure(iters int, fn func()) func(p int) time.Duration {
	fn() // warm up
	ds := make([]time.Duration, iters)
	for i := range ds {
		s := time.Now()
		fn()
		ds[i] = time.Since(s)
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return func(p int) time.Duration {
		return ds[min(len(ds)-1, len(ds)*p/100)].Round(10 * time.Microsecond)
	}
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
