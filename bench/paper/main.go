// Command paper reproduces the load test of the WoSC'22 paper "Migrating
// from Microservices to Serverless: An IoT Platform Case Study": its eight
// endpoints under its three load shapes (linear ramp to 100 virtual users,
// random arrivals, spike), time-compressed, against three topologies run as
// local processes — all-in-one, per-role (PostgreSQL + Kafka + OpenSearch)
// and per-function (Core procedures in function mode) — and prints avg / p95
// / errors beside the paper's GKE figures, plus the function cold start.
//
//	go run ./bench/paper -bin bin/iotplatform   (make bench-paper)
//
// The load generator is ours (k6 is AGPL-licensed). Loopback only.
package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

var (
	bin      = flag.String("bin", "bin/iotplatform", "the iotplatform binary")
	pgDSN    = flag.String("postgres", os.Getenv("IOT_TEST_POSTGRES_DSN"), "PostgreSQL DSN (a fresh database is created per run)")
	brokers  = flag.String("kafka", os.Getenv("IOT_TEST_KAFKA_BROKERS"), "Kafka brokers")
	osURL    = flag.String("opensearch", os.Getenv("IOT_TEST_OPENSEARCH_URL"), "OpenSearch URL")
	vus      = flag.Int("vus", 100, "peak virtual users (the paper: 100)")
	phase    = flag.Duration("phase", 2*time.Second, "length of each load shape per endpoint (the paper: 30 min ramps)")
	think    = flag.Duration("think", 50*time.Millisecond, "pause between a virtual user's requests")
	topos    = flag.String("topologies", "all-in-one,per-role,per-function", "topologies to run")
	coldRuns = flag.Int("cold-starts", 10, "function cold starts to measure")
)

// paper holds the GKE figures (avg, p95) the issue quotes; 0 = not given.
var paper = map[string][2]time.Duration{
	"Users-Signin":          {480 * time.Millisecond, 1050 * time.Millisecond},
	"Users-Get":             {23700 * time.Microsecond, 36500 * time.Microsecond},
	"Devices-Get":           {18200 * time.Microsecond, 23700 * time.Microsecond},
	"Sensors-Get":           {11500 * time.Microsecond, 19700 * time.Microsecond},
	"HTTP-Gateway":          {54 * time.Millisecond, 113 * time.Millisecond},
	"Consumers-Consume-Get": {37 * time.Millisecond, 83 * time.Millisecond},
}

var endpoints = []string{"Users-Signin", "Users-Get", "Devices-Add", "Devices-Get", "Sensors-Add", "Sensors-Get", "HTTP-Gateway", "Consumers-Consume-Get"}

func main() {
	flag.Parse()
	log.SetFlags(0)
	fmt.Printf("machine: %d cores (shared with other engineers' work), load %s\n", runtimeCPUs(), loadavg())
	fmt.Printf("shapes per endpoint: ramp 1→%d VUs over %v, random arrivals (Poisson, %d/s) for %v, spike (%d VUs, then %d for %v, then %d); think %v\n\n",
		*vus, *phase, *vus*5, *phase, *vus/10, *vus, *phase/2, *vus/10, *think)
	ref := runReference()
	fmt.Printf("reference (same shapes, bare Go net/http handler): avg %s p95 %s\n\n", ms(ref.avg()), ms(ref.p95()))
	results := map[string]map[string]*stats{}
	var order []string
	for _, topo := range strings.Split(*topos, ",") {
		t, err := startTopology(topo)
		if err != nil {
			log.Fatalf("%s: %v", topo, err)
		}
		fx, err := t.fixture()
		if err != nil {
			t.stop()
			log.Fatalf("%s fixture: %v", topo, err)
		}
		results[topo] = map[string]*stats{}
		for _, ep := range endpoints {
			results[topo][ep] = runShapes(ep, func(c *http.Client) error { return fx.call(c, ep) })
		}
		if topo == "per-function" {
			t.coldStart(fx)
		}
		t.stop()
		order = append(order, topo)
	}
	fmt.Printf("\n| endpoint | paper GKE avg / p95 |")
	for _, topo := range order {
		fmt.Printf(" %s avg / p95 / errors (requests) |", topo)
	}
	fmt.Printf("\n|---|---|")
	for range order {
		fmt.Printf("---|")
	}
	fmt.Println()
	for _, ep := range endpoints {
		p := "—"
		if v, ok := paper[ep]; ok {
			p = ms(v[0]) + " / " + ms(v[1])
		}
		fmt.Printf("| %s | %s |", ep, p)
		for _, topo := range order {
			s := results[topo][ep]
			fmt.Printf(" %s / %s / %.1f%% (%d) |", ms(s.avg()), ms(s.p95()), s.errRate()*100, s.n())
		}
		fmt.Println()
	}
	fmt.Printf("| reference: bare handler | — |")
	for range order {
		fmt.Printf(" %s / %s |", ms(ref.avg()), ms(ref.p95()))
	}
	fmt.Println()
}

func runtimeCPUs() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, bytes.Count(b, []byte("processor\t:")))
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func ms(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
}

// stats collects latencies and errors.
type stats struct {
	mu   sync.Mutex
	lat  []time.Duration
	errs int
	last string
}

func (s *stats) add(d time.Duration, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errs++
		s.last = err.Error()
		return
	}
	s.lat = append(s.lat, d)
}

func (s *stats) n() int { return len(s.lat) + s.errs }

func (s *stats) avg() time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range s.lat {
		sum += d
	}
	return sum / time.Duration(len(s.lat))
}

func (s *stats) p95() time.Duration {
	if len(s.lat) == 0 {
		return 0
	}
	l := slices.Clone(s.lat)
	slices.Sort(l)
	return l[min(len(l)-1, len(l)*95/100)]
}

func (s *stats) errRate() float64 {
	if s.n() == 0 {
		return 0
	}
	return float64(s.errs) / float64(s.n())
}

func newClient() *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 0}}
}

// runShapes runs the three shapes in turn against call and merges them.
func runShapes(name string, call func(*http.Client) error) *stats {
	s := &stats{}
	c := newClient()
	defer c.CloseIdleConnections()
	do := func() {
		t0 := time.Now()
		err := call(c)
		s.add(time.Since(t0), err)
	}
	// 1. Linear ramp: VU i starts at i/vus of the phase and loops until its end.
	closedLoop(*phase, func(elapsed time.Duration) int { return 1 + int(float64(*vus-1)*elapsed.Seconds()/phase.Seconds()) }, do)
	// 2. Random arrivals: an open model, exponential gaps at vus*5 per second,
	// capped at vus requests in flight.
	sem := make(chan struct{}, *vus)
	var wg sync.WaitGroup
	end := time.Now().Add(*phase)
	for time.Now().Before(end) {
		time.Sleep(time.Duration(rand.ExpFloat64() * float64(time.Second) / float64(*vus*5)))
		select {
		case sem <- struct{}{}:
			wg.Add(1)
			go func() { defer wg.Done(); do(); <-sem }()
		default:
			s.add(0, fmt.Errorf("dropped: %d in flight", *vus))
		}
	}
	wg.Wait()
	// 3. Spike: vus/10, then all vus for the middle half, then vus/10.
	closedLoop(*phase, func(elapsed time.Duration) int {
		if elapsed > *phase/4 && elapsed < *phase*3/4 {
			return *vus
		}
		return max(1, *vus/10)
	}, do)
	if s.errs > 0 {
		fmt.Printf("    %s: %d errors, last: %.200s\n", name, s.errs, s.last)
	}
	return s
}

// closedLoop keeps target(elapsed) virtual users running do with think time.
func closedLoop(d time.Duration, target func(time.Duration) int, do func()) {
	start := time.Now()
	var active atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < *vus; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				el := time.Since(start)
				if el >= d {
					return
				}
				if i >= target(el) {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				active.Add(1)
				do()
				active.Add(-1)
				time.Sleep(*think)
			}
		}(i)
	}
	wg.Wait()
}

func runReference() *stats {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"ok":true}`)) })}
	go srv.Serve(ln)
	defer srv.Close()
	u := "http://" + ln.Addr().String() + "/"
	return runShapes("reference", func(c *http.Client) error { _, err := get(c, u, ""); return err })
}

// ---- topologies ----

type topology struct {
	name  string
	procs []*exec.Cmd
	dirs  []string
	// base URLs per endpoint family.
	users, devices, sensors, ingest, query string
	dsn                                    string
	keys                                   string
	dropDB                                 func()
}

func freePort() string {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	return ln.Addr().String()
}

func (t *topology) start(args []string, env []string, readyURL string) error {
	dir, _ := os.MkdirTemp("", "bench-paper-")
	t.dirs = append(t.dirs, dir)
	cmd := exec.Command(*bin, args...)
	cmd.Env = append(os.Environ(), env...)
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return err
	}
	t.procs = append(t.procs, cmd)
	for range 600 {
		if r, err := http.Get(readyURL); err == nil {
			r.Body.Close()
			if r.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "log"))
	return fmt.Errorf("%v not ready:\n%s", args, b)
}

// serve starts `serve --roles=roles` with its own data dir and ports and
// returns its API and HTTP ingest base URLs.
func (t *topology) serve(roles string, env ...string) (api, ingest string, err error) {
	a, h, w, m := freePort(), freePort(), freePort(), freePort()
	dir, _ := os.MkdirTemp("", "bench-paper-data-")
	t.dirs = append(t.dirs, dir)
	err = t.start([]string{"serve", "--roles=" + roles, "--data-dir", dir, "--api-addr", a, "--http-addr", h, "--ws-addr", w, "--mqtt-addr", m, "--log-level", "warn"}, env, "http://"+a+"/readyz")
	return "http://" + a, "http://" + h, err
}

func (t *topology) stop() {
	for _, p := range t.procs {
		p.Process.Signal(os.Interrupt)
	}
	for _, p := range t.procs {
		done := make(chan struct{})
		go func() { p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			p.Process.Kill()
		}
	}
	for _, d := range t.dirs {
		os.RemoveAll(d)
	}
	if t.dropDB != nil {
		t.dropDB()
	}
}

func freshDB() (string, func(), error) {
	if *pgDSN == "" {
		return "", nil, fmt.Errorf("no PostgreSQL: set -postgres or IOT_TEST_POSTGRES_DSN (scripts/services/test-services.sh env)")
	}
	db, err := sql.Open("pgx", *pgDSN)
	if err != nil {
		return "", nil, err
	}
	name := fmt.Sprintf("bench_paper_%d", time.Now().UnixNano())
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		return "", nil, err
	}
	u, _ := url.Parse(*pgDSN)
	u.Path = "/" + name
	return u.String(), func() { db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); db.Close() }, nil
}

const adminPassword = "bench-paper-admin-pw"

func startTopology(name string) (*topology, error) {
	t := &topology{name: name}
	// One load-generator address stands for the paper's 100 users: lift the
	// per-address sign-in cap (default 4 at once) to the VU count.
	adminEnv := "IOT_ADMIN_PASSWORD=" + adminPassword
	os.Setenv("IOT_SIGNIN_PER_ADDRESS", fmt.Sprint(*vus))
	os.Setenv("IOT_SIGNIN_QUEUE", fmt.Sprint(*vus))
	fmt.Printf("== %s\n", name)
	switch name {
	case "all-in-one":
		api, in, err := t.serve("all", adminEnv)
		if err != nil {
			return t, err
		}
		t.users, t.devices, t.sensors, t.ingest, t.query = api, api, api, in, api
		return t, nil
	case "per-role", "per-function":
		dsn, drop, err := freshDB()
		if err != nil {
			return t, err
		}
		t.dsn, t.dropDB = dsn, drop
		n := fmt.Sprint(time.Now().UnixNano())
		keys, _ := os.MkdirTemp("", "bench-paper-keys-")
		t.dirs = append(t.dirs, keys)
		t.keys = keys
		common := []string{"IOT_POSTGRES_DSN=" + dsn, "IOT_KAFKA_BROKERS=" + *brokers, "IOT_OPENSEARCH_URL=" + *osURL,
			"IOT_KAFKA_TOPIC=bench.paper." + n, "IOT_KAFKA_GROUP=bench-paper-" + n, "IOT_OPENSEARCH_PREFIX=bench-paper-" + n}
		core, _, err := t.serve("core", append(common, adminEnv, "IOT_KEYS_DIR="+keys)...)
		if err != nil {
			return t, err
		}
		jwks := "IOT_JWKS_URL=" + core + "/.well-known/jwks.json"
		if _, _, err := t.serve("pipeline", append(common, jwks)...); err != nil {
			return t, err
		}
		_, in, err := t.serve("ingest", append(common, jwks)...)
		if err != nil {
			return t, err
		}
		q, _, err := t.serve("query", append(common, jwks)...)
		if err != nil {
			return t, err
		}
		t.users, t.devices, t.sensors, t.ingest, t.query = core, core, core, in, q
		if name == "per-function" {
			fn := func(args ...string) (string, error) {
				a := freePort()
				port := a[strings.LastIndex(a, ":")+1:]
				return "http://" + a, t.start(append([]string{"function", "--log-level", "warn"}, args...),
					[]string{"PORT=" + port, "IOT_POSTGRES_DSN=" + dsn}, "http://"+a+"/readyz")
			}
			if t.users, err = fn("--group=users", "--keys-dir="+keys); err != nil {
				return t, err
			}
			fj := "--jwks-url=" + t.users + "/.well-known/jwks.json"
			if t.devices, err = fn("--group=devices", "--keys-dir="+keys, fj); err != nil {
				return t, err
			}
			if t.sensors, err = fn("--group=sensors", fj); err != nil {
				return t, err
			}
		}
		return t, nil
	}
	return t, fmt.Errorf("unknown topology %q", name)
}

// ---- fixture and calls ----

type fixture struct {
	t                           *topology
	admin, userID               string
	device, sensor, deviceToken string
	consumerToken               string
	seq                         atomic.Int64
}

func get(c *http.Client, u, tok string) ([]byte, error) { return do(c, "GET", u, tok, nil) }

func do(c *http.Client, method, u, tok string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, u, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return b, fmt.Errorf("%s %s: %d %s", method, u, resp.StatusCode, bytes.TrimSpace(b))
	}
	return b, nil
}

func field(b []byte, path ...string) string {
	var v any
	json.Unmarshal(b, &v)
	for _, k := range path {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return fmt.Sprint(int64(x))
	}
	return ""
}

func (t *topology) fixture() (*fixture, error) {
	c := newClient()
	f := &fixture{t: t}
	b, err := do(c, "POST", t.users+"/api/users/signin", "", map[string]string{"username": "root", "password": adminPassword})
	if err != nil {
		return nil, err
	}
	f.admin = field(b, "token")
	if b, err = get(c, t.users+"/api/me", f.admin); err != nil {
		return nil, err
	}
	f.userID = field(b, "user", "id")
	if f.userID == "" {
		f.userID = field(b, "result", "id")
	}
	if b, err = do(c, "POST", t.devices+"/api/devices", f.admin, map[string]string{"name": "bench", "description": "paper"}); err != nil {
		return nil, err
	}
	f.device = field(b, "result", "id")
	if b, err = do(c, "POST", t.sensors+"/api/devices/"+f.device+"/sensors", f.admin, map[string]string{"name": "s", "mapping": `{"type":"double"}`}); err != nil {
		return nil, err
	}
	f.sensor = field(b, "id")
	if b, err = get(c, t.devices+"/api/devices/"+f.device+"/key", f.admin); err != nil {
		return nil, err
	}
	f.deviceToken = field(b, "token")
	if _, err = do(c, "POST", t.ingest+"/", f.deviceToken, map[string]any{"sensor_id": f.sensor, "value": 1}); err != nil {
		return nil, err
	}
	// A consumer granted the sensor (the consumer procedures run on Core).
	cons := t.consumersURL()
	if b, err = do(c, "POST", cons+"/api/consumers", f.admin, map[string]string{"name": "reader"}); err != nil {
		return nil, err
	}
	cid := field(b, "result", "id")
	if _, err = do(c, "POST", cons+"/api/consumers/"+cid+"/sensors", f.admin, map[string]string{"sensor_id": f.sensor}); err != nil {
		return nil, err
	}
	if b, err = get(c, cons+"/api/consumers/"+cid+"/key", f.admin); err != nil {
		return nil, err
	}
	f.consumerToken = field(b, "token")
	if f.userID == "" || f.device == "" || f.sensor == "" || f.deviceToken == "" || f.consumerToken == "" {
		return nil, fmt.Errorf("fixture incomplete: %+v", f)
	}
	return f, nil
}

// consumersURL is where the consumer procedures run: the core process
// (the first one started; per-function keeps it for the consumers group).
func (t *topology) consumersURL() string {
	if t.name == "all-in-one" {
		return t.users
	}
	return "http://" + argValue(t.procs[0].Args, "--api-addr")
}

func argValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

func (f *fixture) call(c *http.Client, ep string) error {
	t := f.t
	var err error
	switch ep {
	case "Users-Signin":
		_, err = do(c, "POST", t.users+"/api/users/signin", "", map[string]string{"username": "root", "password": adminPassword})
	case "Users-Get":
		_, err = get(c, t.users+"/api/users/"+f.userID, f.admin)
	case "Devices-Add":
		_, err = do(c, "POST", t.devices+"/api/devices", f.admin, map[string]string{"name": fmt.Sprint("d", f.seq.Add(1))})
	case "Devices-Get":
		_, err = get(c, t.devices+"/api/devices/"+f.device, f.admin)
	case "Sensors-Add":
		_, err = do(c, "POST", t.sensors+"/api/devices/"+f.device+"/sensors", f.admin, map[string]string{"name": fmt.Sprint("s", f.seq.Add(1)), "mapping": `{"type":"double"}`})
	case "Sensors-Get":
		_, err = get(c, t.sensors+"/api/devices/"+f.device+"/sensors/"+f.sensor, f.admin)
	case "HTTP-Gateway":
		_, err = do(c, "POST", t.ingest+"/", f.deviceToken, map[string]any{"sensor_id": f.sensor, "value": rand.Float64()})
	case "Consumers-Consume-Get":
		_, err = get(c, t.query+"/api/sensors/"+f.sensor+"/readings?limit=10", f.consumerToken)
	}
	return err
}

// coldStart measures exec → first 200 of GetDevice for a devices function.
func (t *topology) coldStart(f *fixture) {
	var ds, hs []time.Duration
	for range *coldRuns {
		a := freePort()
		port := a[strings.LastIndex(a, ":")+1:]
		cmd := exec.Command(*bin, "function", "--group=devices", "--keys-dir="+t.keys, "--jwks-url="+t.users+"/.well-known/jwks.json", "--log-level", "warn")
		cmd.Env = append(os.Environ(), "PORT="+port, "IOT_POSTGRES_DSN="+t.dsn)
		c := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		t0 := time.Now()
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		for time.Since(t0) < 10*time.Second {
			if r, err := c.Get("http://" + a + "/healthz"); err == nil {
				r.Body.Close()
				hs = append(hs, time.Since(t0))
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		for time.Since(t0) < 10*time.Second {
			if _, err := get(c, "http://"+a+"/api/devices/"+f.device, f.admin); err == nil {
				ds = append(ds, time.Since(t0))
				break
			}
			time.Sleep(500 * time.Microsecond)
		}
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}
	slices.Sort(ds)
	slices.Sort(hs)
	if len(hs) > 0 {
		fmt.Printf("cold start, exec → listening (/healthz, after PostgreSQL open + migration check): min %s, median %s, max %s\n", ms(hs[0]), ms(hs[len(hs)/2]), ms(hs[len(hs)-1]))
	}
	if len(ds) == 0 {
		fmt.Println("cold start: no function answered")
		return
	}
	fmt.Printf("cold start (exec → first 200 of GetDevice, %d runs): min %s, median %s, max %s (target ≤ 50 ms)\n",
		len(ds), ms(ds[0]), ms(ds[len(ds)/2]), ms(ds[len(ds)-1]))
}
