// Command registryload benchmarks the registry at fleet scale against a
// running iotplatform (scripts/bench/registry.sh starts one):
//
//   - create: N closed-loop clients each POST /api/devices (REST) as fast
//     as answers come; a bare net/http handler taking the same POST is
//     measured first in the same run as the reference.
//
//   - import: ImportDevices of -devices devices with -sensors sensors each
//     (default one), timed.
//
//   - growth: Core reads (GetDevice, ListSensors over REST with random ids
//     across the whole registry; ListDevices first and last page, paged by
//     key) measured on a small registry (the reference), then again after
//     ImportDevices grew it to -devices devices with -sensors sensors each; the
//     import time is reported too.
//
//     registryload -api http://127.0.0.1:18080 -password PW -mode create -vus 16 -duration 20s
//     registryload -api http://127.0.0.1:18080 -password PW -mode growth -devices 1000000
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	_ "github.com/jackc/pgx/v5/stdlib"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "API base URL")
	password := flag.String("password", os.Getenv("IOT_ADMIN_PASSWORD"), "root password")
	mode := flag.String("mode", "create", "create, import or growth")
	vus := flag.Int("vus", 16, "closed-loop clients (create), or readers (growth)")
	dur := flag.Duration("duration", 20*time.Second, "duration of each scenario")
	small := flag.Int("small", 1000, "devices of the small (reference) registry (growth)")
	devices := flag.Int("devices", 1_000_000, "devices of the grown registry (growth)")
	batch := flag.Int("batch", 10_000, "devices per ImportDevices call (growth)")
	importers := flag.Int("importers", 2, "concurrent ImportDevices calls (growth)")
	sensor := flag.Bool("with-sensor", false, "create: also create one sensor per device (two writes)")
	refAPI := flag.String("ref-api", "", "growth: API of a second, empty platform that keeps the small registry (reference)")
	refPassword := flag.String("ref-password", "", "growth: root password of -ref-api")
	seedDSN := flag.String("seed-dsn", "", "growth: fill the grown registry with SQL on this PostgreSQL DSN (the platform's own database) instead of ImportDevices")
	rounds := flag.Int("rounds", 3, "growth: alternate reference and subject this many times (median p95 reported)")
	sensorsPer := flag.Int("sensors", 1, "import, growth: sensors per imported device (1-100)")
	flag.Parse()
	if *sensorsPer < 1 || *sensorsPer > 100 {
		fmt.Fprintln(os.Stderr, "registryload: -sensors must be 1-100")
		os.Exit(2)
	}
	b := &bench{api: *api, hc: &http.Client{Transport: &http.Transport{MaxIdleConns: 256, MaxIdleConnsPerHost: 256}}, sensorsPer: *sensorsPer}
	var err error
	if err = b.setup(*password); err == nil {
		switch *mode {
		case "create":
			err = b.create(*vus, *dur, *sensor)
		case "import":
			var took time.Duration
			if took, err = b.grow(*devices, *batch, *importers); err == nil {
				fmt.Printf("ImportDevices: %d devices with %d sensor(s) each in %.1f s = %.0f devices/s (batches of %d, %d concurrent calls); platform CPU %.1f s\n",
					*devices, b.sensorsPer, took.Seconds(), float64(*devices)/took.Seconds(), *batch, *importers, b.importCPU)
			}
		case "growth":
			ref := &bench{api: *refAPI, hc: b.hc, sensorsPer: *sensorsPer}
			if err = ref.setup(*refPassword); err == nil {
				b.seedDSN = *seedDSN
				err = growth(ref, b, *vus, *dur, *small, *devices, *batch, *importers, *rounds)
			}
		default:
			err = fmt.Errorf("unknown mode %q", *mode)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "registryload:", err)
		os.Exit(1)
	}
}

type bench struct {
	api   string
	hc    *http.Client
	token string // of user "fleet", who owns every device
	cc    corev1connect.CoreServiceClient
	ids   []int64 // imported device ids
	sens  map[int64]int64
	// seedDSN, when set, makes grow insert rows with SQL (PostgreSQL).
	seedDSN string
	// importCPU is the platform's CPU time of the last grow.
	importCPU float64
	// sensorsPer is how many sensors grow gives each device.
	sensorsPer int
}

func (b *bench) do(method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		j, _ := json.Marshal(body)
		rd = bytes.NewReader(j)
	}
	req, _ := http.NewRequest(method, b.api+path, rd)
	req.Header.Set("Content-Type", "application/json")
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if out != nil {
		return json.Unmarshal(data, out)
	}
	return nil
}

// setup creates the non-admin user "fleet" (so ListDevices filters by
// owner, as for every user) and signs in as it.
func (b *bench) setup(password string) error {
	var in struct{ Token string }
	if err := b.do("POST", "/api/users/signin", map[string]string{"username": "root", "password": password}, &in); err != nil {
		return err
	}
	b.token = in.Token
	pw := "fleet-" + strconv.FormatInt(rand.Int64(), 36)
	if err := b.do("POST", "/api/users", map[string]string{"username": "fleet", "password": pw}, nil); err != nil {
		return err
	}
	b.token = ""
	if err := b.do("POST", "/api/users/signin", map[string]string{"username": "fleet", "password": pw}, &in); err != nil {
		return err
	}
	b.token = in.Token
	b.cc = corev1connect.NewCoreServiceClient(b.hc, b.api, connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+b.token)
			return next(ctx, req)
		}
	})))
	b.sens = map[int64]int64{}
	return nil
}

type result struct {
	lat    []time.Duration
	n      int
	errors int
	rps    float64
	first  error
}

func (r result) p(q int) float64 {
	if len(r.lat) == 0 {
		return 0
	}
	return float64(r.lat[(len(r.lat)-1)*q/100].Microseconds()) / 1000
}

// load runs call with vus closed-loop clients for d (after d/10 warm-up).
func load(vus int, d time.Duration, call func(vu int) error) result {
	run := func(d time.Duration, keep bool) result {
		var mu sync.Mutex
		var r result
		var wg sync.WaitGroup
		stop := time.Now().Add(d)
		start := time.Now()
		for vu := range vus {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var lat []time.Duration
				errs := 0
				var first error
				for time.Now().Before(stop) {
					t0 := time.Now()
					if err := call(vu); err != nil {
						errs++
						if first == nil {
							first = err
						}
						continue
					}
					lat = append(lat, time.Since(t0))
				}
				mu.Lock()
				r.lat = append(r.lat, lat...)
				r.errors += errs
				if r.first == nil {
					r.first = first
				}
				mu.Unlock()
			}()
		}
		wg.Wait()
		slices.Sort(r.lat)
		r.n = len(r.lat)
		r.rps = float64(r.n) / time.Since(start).Seconds()
		return r
	}
	run(d/10, false)
	return run(d, true)
}

func row(name string, vus int, r result) {
	fmt.Printf("| %s | %d | %.0f | %.2f | %.2f | %.2f | %d |\n", name, vus, r.rps, r.p(50), r.p(95), r.p(99), r.errors)
	if r.first != nil {
		fmt.Printf("first error: %v\n", r.first)
	}
}

func (b *bench) create(vus int, d time.Duration, withSensor bool) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"result":{"id":"1"}}`))
	})}
	go bare.Serve(ln)
	defer bare.Close()
	var seq atomic.Int64
	post := func(url string) func(int) error {
		return func(int) error {
			body := fmt.Sprintf(`{"name":"dev-%d","description":"bench","labels":{"site":"plant-7"}}`, seq.Add(1))
			req, _ := http.NewRequest("POST", url, bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+b.token)
			resp, err := b.hc.Do(req)
			if err != nil {
				return err
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d: %s", resp.StatusCode, data)
			}
			if withSensor && url == b.api+"/api/devices" {
				var out struct{ Result struct{ ID string } }
				if err := json.Unmarshal(data, &out); err != nil {
					return err
				}
				return b.do("POST", "/api/devices/"+out.Result.ID+"/sensors", map[string]string{"name": "temp", "mapping": `{"type":"double"}`}, nil)
			}
			return nil
		}
	}
	what := "CreateDevice REST"
	if withSensor {
		what = "CreateDevice + CreateSensor REST (2 writes)"
	}
	fmt.Printf("| scenario | clients | ops/s | p50 ms | p95 ms | p99 ms | failed |\n|---|---|---|---|---|---|---|\n")
	ref := load(vus, d, post("http://"+ln.Addr().String()+"/"))
	row("reference: bare net/http POST", vus, ref)
	sub := load(vus, d, post(b.api+"/api/devices"))
	row(what, vus, sub)
	fmt.Printf("ratio to bare: %.2f (throughput), %.1f× (p95)\n", sub.rps/ref.rps, sub.p(95)/ref.p(95))
	return nil
}

// cpuSeconds reads the platform's process_cpu_seconds_total from /metrics:
// on a machine shared with other work the CPU a run cost tells more than
// its wall time.
func (b *bench) cpuSeconds() float64 {
	resp, err := b.hc.Get(b.api + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "process_cpu_seconds_total "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// grow imports devices with b.sensorsPer sensors each until the fleet has n.
func (b *bench) grow(n, batch, importers int) (time.Duration, error) {
	if b.seedDSN != "" {
		return b.seedSQL(n)
	}
	cpu0 := b.cpuSeconds()
	defer func() { b.importCPU = b.cpuSeconds() - cpu0 }()
	start := time.Now()
	next := len(b.ids)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var firstErr error
	for range importers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				from := next
				if from >= n || firstErr != nil {
					mu.Unlock()
					return
				}
				to := min(from+batch, n)
				next = to
				mu.Unlock()
				req := &corev1.ImportDevicesRequest{Devices: make([]*corev1.DeviceImport, 0, to-from)}
				for i := from; i < to; i++ {
					sensors := []*corev1.SensorImport{{Name: "temp", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE, Unit: "C"}}
					for k := 1; k < b.sensorsPer; k++ {
						sensors = append(sensors, &corev1.SensorImport{Name: "temp-" + strconv.Itoa(k), ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE, Unit: "C"})
					}
					req.Devices = append(req.Devices, &corev1.DeviceImport{
						ExternalId: "inv-" + strconv.Itoa(i), Name: "device-" + strconv.Itoa(i), Labels: map[string]string{"site": "plant-7"},
						Sensors: sensors,
					})
				}
				res, err := b.cc.ImportDevices(context.Background(), req)
				mu.Lock()
				if err != nil {
					firstErr = err
				} else {
					for _, r := range res.Results {
						b.ids = append(b.ids, r.Id)
						b.sens[r.Id] = r.SensorIds[0]
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return time.Since(start), firstErr
}

// lastPageToken pages through every device and returns the token of the
// last page of size 100, plus the p95 of the walk's pages (size 1000).
func (b *bench) lastPageToken() (string, result, error) {
	var walk result
	tok, prev, lastFull := "", "", ""
	for size := 1000; ; {
		t0 := time.Now()
		var page struct {
			Result []struct{ ID string }
			Next   string `json:"next_page_token"`
		}
		if err := b.do("GET", fmt.Sprintf("/api/devices?page_size=%d&page_token=%s", size, tok), nil, &page); err != nil {
			return "", walk, err
		}
		if size == 1000 {
			walk.lat = append(walk.lat, time.Since(t0))
		}
		if size == 100 && len(page.Result) > 0 {
			lastFull = tok
		}
		if page.Next == "" {
			if size == 100 {
				slices.Sort(walk.lat)
				return lastFull, walk, nil
			}
			// Walk the final stretch in pages of 100 to find the last
			// non-empty one.
			size, tok = 100, prev
			continue
		}
		prev, tok = tok, page.Next
	}
}

type scenario struct {
	name string
	call func(int) error
}

// scenarios are the reads measured on b; the walk for the last page's
// token is timed too (every page of 1000).
func (b *bench) scenarios() ([]scenario, result, error) {
	last, walk, err := b.lastPageToken()
	if err != nil {
		return nil, walk, err
	}
	get := func(path func() string) func(int) error {
		return func(int) error { return b.do("GET", path(), nil, nil) }
	}
	pick := func() int64 { return b.ids[rand.IntN(len(b.ids))] }
	// The working set: the last 1,000 devices, read again and again (the
	// whole small registry), which the LRU read cache keeps at any size.
	hot := b.ids[max(0, len(b.ids)-1_000):]
	pickHot := func() int64 { return hot[rand.IntN(len(hot))] }
	return []scenario{
		{"GetDevice REST (random device)", get(func() string { return fmt.Sprintf("/api/devices/%d", pick()) })},
		{"GetDevice REST (working set of 1,000 devices)", get(func() string { return fmt.Sprintf("/api/devices/%d", pickHot()) })},
		{"ListSensors REST (random device)", get(func() string { return fmt.Sprintf("/api/devices/%d/sensors", pick()) })},
		{"ListDevices REST first page (100)", get(func() string { return "/api/devices?page_size=100" })},
		{"ListDevices REST last page (100, by key)", get(func() string { return "/api/devices?page_size=100&page_token=" + last })},
	}, walk, nil
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}

// growth keeps ref at small devices and grows sub to n, then measures each
// read on both, alternating ref and subject rounds times so that the load
// of the shared machine falls on both alike; it reports the median p95.
func growth(ref, sub *bench, vus int, d time.Duration, small, n, batch, importers, rounds int) error {
	if small > n {
		return errors.New("-small above -devices")
	}
	if _, err := ref.grow(small, batch, importers); err != nil {
		return err
	}
	took, err := sub.grow(n, batch, importers)
	if err != nil {
		return err
	}
	if sub.seedDSN != "" {
		fmt.Printf("\nSQL seed (generate_series): %d devices with %d sensor(s) each in %.1f s\n\n", n, sub.sensorsPer, took.Seconds())
	} else {
		fmt.Printf("\nImportDevices: %d devices with %d sensor(s) each in %.1f s = %.0f devices/s (batches of %d, %d concurrent calls); platform CPU %.1f s\n\n",
			n, sub.sensorsPer, took.Seconds(), float64(n)/took.Seconds(), batch, importers, sub.importCPU)
	}
	rs, rwalk, err := ref.scenarios()
	if err != nil {
		return err
	}
	ss, swalk, err := sub.scenarios()
	if err != nil {
		return err
	}
	fmt.Printf("| scenario | readers | req/s | p50 ms | p95 ms | p99 ms | errors |\n|---|---|---|---|---|---|---|\n")
	row(fmt.Sprintf("%d devices — ListDevices every page of a full walk (1000 per page, %d pages)", small, len(rwalk.lat)), 1, rwalk)
	row(fmt.Sprintf("%d devices — ListDevices every page of a full walk (1000 per page, %d pages)", n, len(swalk.lat)), 1, swalk)
	p95 := [2][][]float64{make([][]float64, len(rs)), make([][]float64, len(rs))}
	for round := range rounds {
		for i := range rs {
			for side, sc := range [2]scenario{rs[i], ss[i]} {
				r := load(vus, d, sc.call)
				if r.errors > 0 {
					return fmt.Errorf("%s: %d errors, first %v", sc.name, r.errors, r.first)
				}
				size := []int{small, n}[side]
				row(fmt.Sprintf("round %d, %d devices — %s", round+1, size, sc.name), vus, r)
				p95[side][i] = append(p95[side][i], r.p(95))
			}
		}
	}
	fmt.Printf("\n| call | p95 %d devices (median of %d) | p95 %d devices (median of %d) | ratio |\n|---|---|---|---|\n", small, rounds, n, rounds)
	for i := range rs {
		a, b := median(p95[0][i]), median(p95[1][i])
		fmt.Printf("| %s | %.2f ms | %.2f ms | %.2f |\n", rs[i].name, a, b, b/a)
	}
	return nil
}

// seedSQL fills a PostgreSQL registry with n devices of user "fleet",
// b.sensorsPer sensors each, in chunks of 100,000 rows (for the growth benchmark on
// PostgreSQL, where the import path is not what is measured).
func (b *bench) seedSQL(n int) (time.Duration, error) {
	start := time.Now()
	db, err := sql.Open("pgx", b.seedDSN)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	var owner int64
	if err := db.QueryRow(`SELECT id FROM users WHERE username = 'fleet'`).Scan(&owner); err != nil {
		return 0, err
	}
	now := time.Now().UnixMicro()
	for from := len(b.ids); from < n; from += 100_000 {
		to := min(from+100_000, n)
		rows, err := db.Query(`INSERT INTO devices (owner_id, name, description, labels, key_gen, created_at, updated_at, external_id)
			SELECT $1, 'device-' || g, '', '{"site":"plant-7"}', 0, $2, $2, 'inv-' || g FROM generate_series($3::bigint, $4::bigint) g RETURNING id`,
			owner, now, from, to-1)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return 0, err
			}
			b.ids = append(b.ids, id)
		}
		rows.Close()
		if _, err := db.Exec(`INSERT INTO sensors (device_id, name, description, unit, value_type, path, created_at, updated_at)
			SELECT id, CASE WHEN k = 0 THEN 'temp' ELSE 'temp-' || k END, '', 'C', 'double', '', $1, $1
			FROM devices, generate_series(0, $4::int - 1) k WHERE owner_id = $2 AND id >= $3`, now, owner, b.ids[from], b.sensorsPer); err != nil {
			return 0, err
		}
	}
	_, err = db.Exec(`ANALYZE`)
	return time.Since(start), err
}
