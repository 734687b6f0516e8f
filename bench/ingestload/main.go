// Command ingestload is the ingestion load generator. The in-process modes
// run the platform in this process through the app's own constructor
// (bench/internal/inproc), on Kafka or with the app's bus seam given an
// instant in-memory sink, and drive its real edges with closed-loop
// clients; -mode=binary and -mode=tracing-ab drive a running
// bin/iotplatform (scripts/bench/ingest.sh, tracing.sh). Throughput and
// latency are printed beside a reference measured in the same run.
//
//	go run ./bench/ingestload -mode=http|https|http-batch|grpc|mqtt|kafka [-d 10s] [-c 64]
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplatform/iotplatform/app"
	"github.com/iotplatform/iotplatform/bench/internal/inproc"
	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

var (
	mode     = flag.String("mode", "http", "http, https, http-batch, grpc, mqtt, kafka, binary or tracing-ab")
	dur      = flag.Duration("d", 10*time.Second, "duration of each measurement")
	conns    = flag.Int("c", 64, "connections / clients")
	inflt    = flag.Int("inflight", 16, "MQTT publishes in flight per client")
	brokers  = flag.String("kafka", "127.0.0.1:59092", "Kafka brokers for -mode=kafka")
	recSize  = flag.Int("size", 100, "record size for -mode=kafka")
	cpuProf  = flag.String("cpuprofile", "", "write a CPU profile of this process (gateway + load generator)")
	apiURL   = flag.String("api", "", "-mode=binary: API URL of a running iotplatform (e.g. http://127.0.0.1:18080)")
	httpGW   = flag.String("http-gw", "127.0.0.1:18083", "-mode=binary: HTTP gateway address")
	mqttGW   = flag.String("mqtt-gw", "127.0.0.1:11883", "-mode=binary: MQTT gateway address")
	adminPW  = flag.String("password", "", "-mode=binary: root's password")
	bareAddr = flag.String("bare-addr", "127.0.0.1:0", "-mode=bare: address of the bare handler process")
	parts    = flag.String("parts", "http,lag,batch,mqtt", "-mode=binary: which measurements to run")
	runs     = flag.Int("runs", 3, "alternating reference/gateway runs (http, mqtt); the median ratio is reported")
)

func main() {
	flag.Parse()
	if *mode == "bare" {
		ln, err := net.Listen("tcp", *bareAddr)
		must(err)
		fmt.Println(ln.Addr().String())
		must(http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(200)
		})))
		return
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		must(err)
		must(pprof.StartCPUProfile(f))
		defer pprof.StopCPUProfile()
	}
	defer func() {
		for _, c := range cleanups {
			c()
		}
	}()
	fmt.Printf("machine: %d CPUs, %s; mode %s, %s per run\n", numCPU(), cpuModel(), *mode, *dur)
	switch *mode {
	case "binary":
		binary()
		return
	case "tracing-ab":
		tracingAB()
		return
	}
	// The in-process modes run the platform in this process, built by the
	// app's own constructor (bench/internal/inproc): on Kafka, or with the
	// app's bus seam (app.WithBus) given an instant in-memory sink, so the
	// edges are measured without the store behind them.
	var stored atomic.Int64
	sink := func(args ...string) (*inproc.Platform, inproc.Device) {
		b := busembedded.New(5 * time.Second)
		go b.Subscribe(context.Background(), func(_ context.Context, recs []*busv1.Record) error {
			stored.Add(int64(len(recs)))
			return nil
		})
		for !b.Subscribed() {
			time.Sleep(time.Millisecond)
		}
		return platform(append([]string{"--roles", "core,ingest"}, args...), 8, "double", app.WithBus(b, nil))
	}
	switch *mode {
	case "http":
		bare := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.WriteHeader(200)
		}))
		p, dev := sink()
		body := bodyFor(dev.Sensors[0])
		pairs(func() result { return httpLoad(bare, dev.Token, body) }, func() result { return httpLoad(gwURL(p), dev.Token, body) },
			"bare net/http 200:     ", "HTTP gateway (1/req):  ")
	case "https":
		// The same gateway over plain HTTP (reference) and TLS, keep-alive
		// connections: the cost of encryption, handshakes amortised. Two
		// platforms, identical but for --http-tls-cert/--http-tls-key.
		plain, pdev := sink()
		cert, key := tlsFiles()
		secure, sdev := sink("--http-tls-cert", cert, "--http-tls-key", key)
		pb, sb := bodyFor(pdev.Sensors[0]), bodyFor(sdev.Sensors[0])
		pairs(func() result { return httpLoad(gwURL(plain), pdev.Token, pb) }, func() result {
			return httpLoad("https://"+secure.Addr("http")+"/", sdev.Token, sb)
		}, "HTTP gateway, plain:   ", "HTTP gateway, TLS:     ")
	case "http-batch":
		p, dev := sink()
		var b bytes.Buffer
		b.WriteByte('[')
		for i := 0; i < 1000; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sensor_id":%s,"timestamp":%d,"value":%d.5}`, dev.Sensors[i%len(dev.Sensors)], 1526717967000+int64(i), i)
		}
		b.WriteByte(']')
		*conns = min(*conns, 8)
		got := httpLoad(gwURL(p), dev.Token, b.Bytes())
		fmt.Printf("HTTP batches of 1000:   %s => %.0f readings/s (sink saw %d)\n", got, got.rate*1000, stored.Load())
	case "grpc":
		p, dev := sink()
		grpcLoad(p.API, dev, &stored)
	case "mqtt":
		p, dev := sink()
		port := freePort()
		cmd := exec.Command("/usr/sbin/mosquitto", "-p", strconv.Itoa(port))
		must(cmd.Start())
		cleanups = append(cleanups, func() { _ = cmd.Process.Kill() })
		defer cmd.Process.Kill()
		time.Sleep(500 * time.Millisecond)
		body := bodyFor(dev.Sensors[0])
		pairs(func() result { return mqttLoadWith("127.0.0.1:"+strconv.Itoa(port), dev.Token, body) }, func() result { return mqttLoadWith(p.Addr("mqtt"), dev.Token, body) },
			"mosquitto QoS1:        ", "MQTT gateway QoS1:     ")
	case "kafka":
		p, dev := platform([]string{"--roles", "core,ingest", "--kafka-brokers", *brokers, "--kafka-topic", "bench.readings",
			"--kafka-partitions", "6", "--http-max-body", strconv.Itoa(8 << 20)}, 1, "string")
		val := bytes.Repeat([]byte("x"), max(1, *recSize-40))
		var b bytes.Buffer
		b.WriteByte('[')
		for i := 0; i < 500; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sensor_id":%s,"value":%q}`, dev.Sensors[0], val)
		}
		b.WriteByte(']')
		*conns = min(*conns, 16)
		got := httpLoad(gwURL(p), dev.Token, b.Bytes())
		fmt.Printf("HTTP -> Kafka (batches of 500, ~%d B records): %s => %.0f records/s\n", *recSize, got, got.rate*500)
	default:
		must(fmt.Errorf("unknown -mode %q", *mode))
	}
}

// platform starts the platform in this process (stopped by must and at
// exit) and provisions a device with n sensors of type typ.
func platform(args []string, n int, typ string, opts ...app.Option) (*inproc.Platform, inproc.Device) {
	p, err := inproc.Start(args, opts...)
	must(err)
	cleanups = append(cleanups, p.Close)
	dev, err := inproc.Provision(p.API, p.Password, n, typ)
	must(err)
	mqttTopic = dev.ID
	return p, dev
}

// gwURL is the HTTP gateway of an in-process platform.
func gwURL(p *inproc.Platform) string { return "http://" + p.Addr("http") + "/" }

func bodyFor(sensor string) []byte {
	return []byte(`{"sensor_id":"` + sensor + `","timestamp":1526717967,"value":"21.5"}`)
}

// pairs alternates reference and subject runs and prints every run and the
// median of the per-pair ratios (robust against a machine shared with
// other work).
func pairs(ref, subject func() result, refName, subjName string) {
	var ratios []float64
	for i := 0; i < *runs; i++ {
		r := ref()
		g := subject()
		fmt.Printf("run %d  %s %s\n", i+1, refName, r)
		fmt.Printf("run %d  %s %s\n", i+1, subjName, g)
		ratios = append(ratios, g.rate/r.rate)
	}
	slices.Sort(ratios)
	fmt.Printf("ratios %.2f, median %.2f\n", ratios, ratios[len(ratios)/2])
}

// bareProcess starts this binary with -mode=bare and returns its URL.
func bareProcess() (string, func()) {
	exe, err := os.Executable()
	must(err)
	cmd := exec.Command(exe, "-mode=bare")
	out, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	cleanups = append(cleanups, func() { _ = cmd.Process.Kill() })
	var addr string
	_, err = fmt.Fscanln(out, &addr)
	must(err)
	return "http://" + addr + "/", func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
}

// binary drives a running iotplatform (embedded bus + embedded store: the
// full durable path, group commit included) through HTTP, gRPC and MQTT.
func binary() {
	tok, sensor := provision()
	body := bodyFor(sensor)
	// The bare handler runs in its own process like the server under test:
	// inside the load generator it would share that process's CPU share
	// with the clients (on a busy machine that halves it).
	bare, stopBare := bareProcess()
	defer stopBare()
	gw := "http://" + *httpGW + "/"
	metrics := "http://" + *httpGW + "/metrics"
	var single []float64
	if strings.Contains(*parts, "http") {
		pairs(func() result { return httpLoad(bare, tok, body) }, func() result {
			r := httpLoad(gw, tok, body)
			single = append(single, r.rate)
			return r
		}, "bare net/http 200:     ", "iotplatform HTTP (1/req, durable):")
	}
	if strings.Contains(*parts, "lag") {
		if len(single) == 0 {
			single = append(single, httpLoad(gw, tok, body).rate)
		}
		slices.Sort(single)
		lagAt(gw, metrics, tok, body, single[len(single)/2]/2)
	}
	if strings.Contains(*parts, "batch") {
		batchesStored(gw, metrics, tok, sensor)
	}
	if !strings.Contains(*parts, "mqtt") {
		return
	}
	port := freePort()
	cmd := exec.Command("/usr/sbin/mosquitto", "-p", strconv.Itoa(port))
	must(cmd.Start())
	cleanups = append(cleanups, func() { _ = cmd.Process.Kill() })
	defer cmd.Process.Kill()
	time.Sleep(500 * time.Millisecond)
	pairs(func() result { return mqttLoadWith("127.0.0.1:"+strconv.Itoa(port), tok, body) }, func() result { return mqttLoadWith(*mqttGW, tok, body) },
		"mosquitto QoS1:        ", "iotplatform MQTT QoS1 (durable):")
}

// mqttTopic is the topic MQTT clients publish to: the provisioned device's
// id.
var mqttTopic string

// provision signs in as root to the platform at -api and creates a device
// with one double sensor, returning the device token and the sensor id.
func provision() (string, string) {
	dev, err := inproc.Provision(*apiURL, *adminPW, 1, "double")
	must(err)
	mqttTopic = dev.ID
	return dev.Token, dev.Sensors[0]
}

type result struct {
	rate          float64
	p50, p99, max time.Duration
	errs          int64
}

func (r result) String() string {
	return fmt.Sprintf("%9.0f req/s  p50 %v  p99 %v  errors %d", r.rate, r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs)
}

func httpLoad(url, tok string, body []byte) result {
	tr := &http.Transport{MaxIdleConnsPerHost: *conns, MaxConnsPerHost: *conns, TLSClientConfig: httpTLS}
	cl := &http.Client{Transport: tr}
	return closedLoop(*conns, func() error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("authorization", "Bearer "+tok)
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// closedLoop runs n workers calling fn for *dur and reports throughput and
// latency percentiles.
func closedLoop(n int, fn func() error) result {
	var (
		mu   sync.Mutex
		lats []time.Duration
		errs atomic.Int64
		wg   sync.WaitGroup
	)
	end := time.Now().Add(*dur)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1<<16)
			for time.Now().Before(end) {
				t := time.Now()
				if err := fn(); err != nil {
					errs.Add(1)
					continue
				}
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lats = append(lats, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	slices.Sort(lats)
	r := result{rate: float64(len(lats)) / el.Seconds(), errs: errs.Load()}
	if len(lats) > 0 {
		r.p50, r.p99, r.max = lats[len(lats)/2], lats[len(lats)*99/100], lats[len(lats)-1]
	}
	return r
}

// grpcLoad drives IngestService.IngestStream of the platform at api over
// gRPC with the Go SDK's client (which carries the device token).
func grpcLoad(api string, dev inproc.Device, stored *atomic.Int64) {
	c := iot.New(api, iot.WithToken(dev.Token), iot.WithGRPC()).Ingest
	ids := make([]int64, len(dev.Sensors))
	for i, s := range dev.Sensors {
		ids[i], _ = strconv.ParseInt(s, 10, 64)
	}
	rs := make([]*ingestv1.Reading, 1000)
	for i := range rs {
		rs[i] = &ingestv1.Reading{SensorId: ids[i%len(ids)], Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(i)}}
	}
	streams := min(*conns, 4)
	var acked atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < streams; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			s, err := c.IngestStream(ctx)
			must(err)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					r, err := s.Receive()
					if err != nil {
						return
					}
					acked.Add(int64(r.GetAccepted()))
				}
			}()
			for seq := uint64(1); time.Since(start) < *dur; seq++ {
				if err := s.Send(&ingestv1.IngestStreamRequest{Sequence: seq, Readings: rs}); err != nil {
					break
				}
			}
			_ = s.CloseRequest()
			<-done
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("gRPC IngestStream, %d streams, batches of 1000: %.0f readings/s acked durable (sink saw %d)\n", streams, float64(acked.Load())/el.Seconds(), stored.Load())
}

func mqttLoadWith(addr, tok string, payload []byte) result {
	var (
		total atomic.Int64
		wg    sync.WaitGroup
	)
	clients := min(*conns, 8)
	start := time.Now()
	for i := 0; i < clients; i++ {
		o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(fmt.Sprintf("bench%d-%d", i, time.Now().UnixNano())).
			SetUsername("JWT").SetPassword(tok).SetMaxResumePubInFlight(*inflt).SetWriteTimeout(10 * time.Second)
		c := pahov3.NewClient(o)
		t := c.Connect()
		t.Wait()
		must(t.Error())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Disconnect(100)
			sem := make(chan struct{}, *inflt)
			var inner sync.WaitGroup
			for time.Since(start) < *dur {
				sem <- struct{}{}
				tk := c.Publish(mqttTopic, 1, false, payload)
				inner.Add(1)
				go func() {
					defer inner.Done()
					tk.Wait()
					if tk.Error() == nil {
						total.Add(1)
					}
					<-sem
				}()
			}
			inner.Wait()
		}()
	}
	wg.Wait()
	return result{rate: float64(total.Load()) / time.Since(start).Seconds()}
}

func serve(h http.Handler) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go (&http.Server{Handler: h}).Serve(ln)
	return "http://" + ln.Addr().String() + "/"
}

func freePort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return bytes.Count(b, []byte("processor\t:"))
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	if i := bytes.Index(b, []byte("model name\t: ")); i >= 0 {
		rest := b[i+13:]
		if j := bytes.IndexByte(rest, '\n'); j >= 0 {
			return string(rest[:j])
		}
	}
	return "unknown CPU"
}

// cleanups run before must exits (child processes such as mosquitto).
var cleanups []func()

func must(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		for _, c := range cleanups {
			c()
		}
		os.Exit(1)
	}
}
