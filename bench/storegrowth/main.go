// Command storegrowth measures how the embedded store's read cost grows with
// the readings it holds: two stores, one with -small readings and one with
// -large (same density: -sensors sensors, one reading every -every per
// sensor, so the large store holds a longer history), queried alternately
// in the same run: Latest of one sensor, Latest of 10 sensors, and a
// one-day Aggregate (1,440 one-minute buckets) of one sensor.
//
//	go run ./bench/storegrowth -small 1000000 -large 10000000
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
)

var (
	small    = flag.Int("small", 1_000_000, "readings in the small store")
	large    = flag.Int("large", 10_000_000, "readings in the large store")
	sensors  = flag.Int("sensors", 100, "sensors (readings are spread evenly over them)")
	every    = flag.Duration("every", 10*time.Second, "interval between two readings of a sensor")
	iters    = flag.Int("iters", 200, "repetitions of each query per store")
	fillOnly = flag.Bool("fill-only", false, "fill the stores of -dir and stop (measure later, e.g. on a quiet machine)")
	dirFlag  = flag.String("dir", "", "directory for the stores (default a temp dir, removed at the end); a store of -dir filled by an earlier run (its .filled marker) is reused, not written again")
)

func main() {
	flag.Parse()
	ctx := context.Background()
	dir := *dirFlag
	if dir == "" {
		d, err := os.MkdirTemp("", "storegrowth")
		check(err)
		defer os.RemoveAll(d)
		dir = d
	}
	fmt.Printf("machine: %d CPUs, %s, %s; %d sensors, one reading per sensor every %v\n", runtime.NumCPU(), runtime.Version(), time.Now().UTC().Format(time.RFC3339), *sensors, *every)
	// The newest day ends at the same instant in both stores; the large one
	// reaches further back.
	end := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC).UnixNano()
	stores := map[string]*storeembedded.Store{}
	for _, n := range []int{*small, *large} {
		name := fmt.Sprint(n)
		path := filepath.Join(dir, name+".db")
		st, err := storeembedded.Open(ctx, slog.New(slog.DiscardHandler), storeembedded.Config{Path: path})
		check(err)
		defer st.Close()
		marker := path + ".filled"
		if _, err := os.Stat(marker); err == nil {
			fmt.Printf("store %s: reusing %s (filled by an earlier run)\n", name, path)
		} else {
			fill(ctx, st, n, end)
			waitCompacted(path)
			check(os.WriteFile(marker, nil, 0o644))
		}
		fi, _ := os.Stat(path)
		fmt.Printf("store %s: %d readings, %.0f days per sensor, %d MiB\n", name, n, float64(n / *sensors)*every.Seconds()/86400, fi.Size()>>20)
		stores[name] = st
	}
	if *fillOnly {
		return
	}
	day := int64(24 * time.Hour)
	from := end - day
	queries := []struct {
		name string
		fn   func(st *storeembedded.Store, r *rand.Rand)
	}{
		{"Latest (1 sensor)", func(st *storeembedded.Store, r *rand.Rand) {
			_, err := st.Latest(ctx, []int64{1 + r.Int64N(int64(*sensors))})
			check(err)
		}},
		{"Latest (10 sensors)", func(st *storeembedded.Store, r *rand.Rand) {
			ids := make([]int64, 10)
			for i := range ids {
				ids[i] = 1 + r.Int64N(int64(*sensors))
			}
			_, err := st.Latest(ctx, ids)
			check(err)
		}},
		{"Aggregate 1 day / 1 min (1 sensor)", func(st *storeembedded.Store, r *rand.Rand) {
			bs, err := st.Aggregate(ctx, store.AggregateQuery{SensorID: 1 + r.Int64N(int64(*sensors)), FromNS: from, ToNS: end, Interval: time.Minute})
			check(err)
			if len(bs) != 1440 {
				panic(fmt.Sprintf("%d buckets", len(bs)))
			}
		}},
	}
	for _, q := range queries {
		lat := map[string][]time.Duration{}
		r := rand.New(rand.NewPCG(1, 2))
		// Warm up both stores (statements prepared, the connection's page
		// cache filled) so the first rounds do not decide the p95.
		for _, st := range stores {
			for range 20 {
				q.fn(st, r)
			}
		}
		// Alternate the stores in rounds of 10 so both see the same noise.
		for i := 0; i < *iters; i += 10 {
			for _, name := range []string{fmt.Sprint(*small), fmt.Sprint(*large)} {
				for range 10 {
					t := time.Now()
					q.fn(stores[name], r)
					lat[name] = append(lat[name], time.Since(t))
				}
			}
		}
		ps, pl := p95(lat[fmt.Sprint(*small)]), p95(lat[fmt.Sprint(*large)])
		fmt.Printf("%-36s p95 %8v (%d readings)  %8v (%d readings)  ratio %.2f\n", q.name, ps.Round(time.Microsecond), *small, pl.Round(time.Microsecond), *large, float64(pl)/float64(ps))
	}
}

func p95(d []time.Duration) time.Duration {
	slices.Sort(d)
	return d[len(d)*95/100]
}

// fill writes n readings: sensor s gets n/sensors readings, one per *every,
// ending at end.
func fill(ctx context.Context, st *storeembedded.Store, n int, end int64) {
	per := n / *sensors
	step := int64(*every)
	start := time.Now()
	type job struct{ sensor, from int }
	jobs := make(chan job, 16)
	go func() {
		for i := 0; i < per; i += 10000 {
			for s := 1; s <= *sensors; s++ {
				jobs <- job{s, i}
			}
		}
		close(jobs)
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs := make([]store.Reading, 0, 10000)
			for j := range jobs {
				rs = rs[:0]
				for i := j.from; i < min(j.from+10000, per); i++ {
					ts := end - int64(per-i)*step
					rs = append(rs, store.Reading{DeviceID: 1, SensorID: int64(j.sensor), TimeNS: ts, Value: store.Value{Kind: store.KindDouble, Double: float64(i % 1000)}, Protocol: "http"})
				}
				check(st.Write(ctx, rs))
			}
		}()
	}
	wg.Wait()
	fmt.Printf("wrote %d readings in %v (%.0f/s)\n", n, time.Since(start).Round(time.Second), float64(n)/time.Since(start).Seconds())
}

// waitCompacted waits until the store folded every minute into rollups (the
// idle committer does it after the load).
func waitCompacted(path string) {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=query_only(1)&_pragma=busy_timeout(10000)")
	check(err)
	defer db.Close()
	start := time.Now()
	for {
		var n int
		check(db.QueryRow("SELECT count(*) FROM rollups_dirty").Scan(&n))
		if n == 0 {
			fmt.Printf("rollups compacted %v after the load\n", time.Since(start).Round(time.Second))
			return
		}
		time.Sleep(time.Second)
	}
}

func check(err error) {
	if err != nil {
		panic(err)
	}
}
