// Command fleet is the many-devices benchmark (issue #18): n devices, each
// with its own key and sensor, connected to the real binary over one edge
// (MQTT 3.1.1 QoS 1, WebSocket or one gRPC IngestStream per device), each
// sending one reading per second with a jittered start. It reports the
// acknowledged rate, the ack latency (MQTT: PUBACK) p50/p99/max, the
// server's RSS per device (RSS under load minus RSS idle before connecting,
// over n), the server's CPU, the generator's own CPU (its worker processes'
// over the measured window) and at the end that every acknowledged reading
// is stored (counted through QueryService.Aggregate).
//
// The devices run in -procs child processes (the per-process descriptor
// limit) with hand-written MQTT and WebSocket framing, so the generator
// takes as little as it can of the CPU it shares with the server: on Linux a
// worker drives all its MQTT or WebSocket devices from one epoll loop
// (evloop_linux.go); gRPC devices (and the others elsewhere) have one
// goroutine each.
//
//	scripts/bench/fleet.sh -edge mqtt -n 19000      # starts the binary
//	go run ./bench/fleet -api http://127.0.0.1:18080 -password PW -pid PID -edge ws -n 1000
package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

var (
	role     = flag.String("role", "coordinator", "coordinator, or (internal) worker")
	edge     = flag.String("edge", "mqtt", "device edge: mqtt, ws or grpc")
	n        = flag.Int("n", 1000, "devices")
	api      = flag.String("api", "http://127.0.0.1:18080", "API base URL (provisioning, gRPC, stored count)")
	password = flag.String("password", os.Getenv("IOT_ADMIN_PASSWORD"), "root password")
	mqttAddr = flag.String("mqtt", "127.0.0.1:11883", "MQTT gateway address")
	wsAddr   = flag.String("ws", "127.0.0.1:18765", "WebSocket gateway address")
	pid      = flag.Int("pid", 0, "server process id (RSS and CPU from /proc)")
	warmup   = flag.Duration("warmup", 10*time.Second, "load before the measured window")
	duration = flag.Duration("duration", 30*time.Second, "measured window")
	interval = flag.Duration("interval", time.Second, "time between a device's readings")
	procs    = flag.Int("procs", 2, "generator processes")
	connRate = flag.Int("connect-rate", 2000, "new connections per second (all processes)")
	label    = flag.String("label", "", "label printed with the results (e.g. before/after)")
	devFile  = flag.String("devices", "", "(worker) device file")
	latFile  = flag.String("lat", "", "(worker) latency output file")
	from     = flag.Int("from", 0, "(worker) first device line")
	to       = flag.Int("to", 0, "(worker) end device line")
)

func main() {
	flag.Parse()
	var err error
	if *role == "worker" {
		err = worker()
	} else {
		err = coordinate()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// device is one provisioned device: id, its sensor and its key.
type device struct {
	id, sensor int64
	key        string
}

// result is what a worker reports (one line "done ...").
type result struct {
	sent, acked, refused int64
	errs, late           int64
	windowAcked          int64
	firstErr             string
	lat                  []uint32 // µs, acks of readings sent in the window
}

func coordinate() error {
	if *pid == 0 {
		return fmt.Errorf("-pid (the server's process id) is required")
	}
	p := &platform{api: *api}
	t := time.Now()
	devs, err := p.provision(*password, *n)
	if err != nil {
		return err
	}
	fmt.Printf("provisioned %d devices (ImportDevices, keys returned) in %.1f s\n", len(devs), time.Since(t).Seconds())
	dir, err := os.MkdirTemp("", "fleet")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	f := dir + "/devices"
	var b strings.Builder
	for _, d := range devs {
		fmt.Fprintf(&b, "%d %d %s\n", d.id, d.sensor, d.key)
	}
	if err := os.WriteFile(f, []byte(b.String()), 0o600); err != nil {
		return err
	}
	time.Sleep(2 * time.Second) // let the import's garbage settle
	idle := rss(*pid)
	fmt.Printf("server idle: RSS %.1f MiB, %d threads\n", float64(idle)/1024, threads(*pid))

	type proc struct {
		cmd *exec.Cmd
		in  io.WriteCloser
		out *bufio.Scanner
		lat string
	}
	var ps []*proc
	defer func() {
		for _, p := range ps {
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
		}
	}()
	t = time.Now()
	for i := 0; i < *procs; i++ {
		lo, hi := len(devs)*i / *procs, len(devs)*(i+1) / *procs
		pr := &proc{lat: fmt.Sprintf("%s/lat%d", dir, i)}
		pr.cmd = exec.Command(os.Args[0], "-role", "worker", "-edge", *edge, "-devices", f, "-from", strconv.Itoa(lo), "-to", strconv.Itoa(hi),
			"-lat", pr.lat, "-api", *api, "-mqtt", *mqttAddr, "-ws", *wsAddr, "-interval", interval.String(),
			"-warmup", warmup.String(), "-duration", duration.String(), "-connect-rate", strconv.Itoa(max(1, *connRate / *procs)))
		pr.cmd.Stderr = os.Stderr
		out, _ := pr.cmd.StdoutPipe()
		pr.out = bufio.NewScanner(out)
		pr.in, _ = pr.cmd.StdinPipe()
		if err := pr.cmd.Start(); err != nil {
			return err
		}
		ps = append(ps, pr)
	}
	connected := 0
	for _, pr := range ps {
		line, err := expect(pr.out, "ready")
		if err != nil {
			return err
		}
		var c, e int
		fmt.Sscanf(line, "ready %d %d", &c, &e)
		connected += c
		if e > 0 {
			fmt.Printf("worker: %s\n", line)
		}
	}
	time.Sleep(2 * time.Second)
	conn := rss(*pid)
	fmt.Printf("%d %s devices connected in %.1f s: server RSS %.1f MiB (%.1f KiB per connected idle device), %d threads\n",
		connected, *edge, time.Since(t).Seconds(), float64(conn)/1024, float64(conn-idle)/float64(max(connected, 1)), threads(*pid))

	t0 := time.Now().Add(500 * time.Millisecond)
	for _, pr := range ps {
		fmt.Fprintf(pr.in, "start %d\n", t0.UnixNano())
	}
	time.Sleep(time.Until(t0.Add(*warmup)))
	// The RSS per device and the metrics' second scrape are taken 1.5-2.5 s
	// before the window ends, every device still connected: they disconnect
	// during its last second.
	m0 := p.scrape()
	cpu0, w0 := cpuTicks(*pid), time.Now()
	var peak int64
	var m1 metrics
	var end int64 // RSS with every device connected and sending
	for time.Since(w0) < *duration {
		time.Sleep(time.Second)
		peak = max(peak, rss(*pid))
		if m1 == nil && time.Since(w0) >= *duration-2500*time.Millisecond {
			end = rss(*pid)
			m1 = p.scrape()
			fmt.Printf("server RSS: anonymous %.1f MiB, files %.1f MiB\n", float64(statusField(*pid, "RssAnon:"))/1024, float64(statusField(*pid, "RssFile:"))/1024)
		}
	}
	cpu1, w1 := cpuTicks(*pid), time.Now()
	if end == 0 {
		end = rss(*pid)
	}
	cpu := float64(cpu1-cpu0) / 100 / w1.Sub(w0).Seconds()

	var total result
	var genTicks int64 // the workers' CPU over their measured window
	for _, pr := range ps {
		line, err := expect(pr.out, "done")
		if err != nil {
			return err
		}
		var r result
		var ticks int64
		fmt.Sscanf(line, "done %d %d %d %d %d %d %d", &r.sent, &r.acked, &r.refused, &r.errs, &r.late, &r.windowAcked, &ticks)
		genTicks += ticks
		if i := strings.Index(line, " err="); i >= 0 && total.firstErr == "" {
			total.firstErr = line[i+5:]
		}
		total.add(r)
		raw, err := os.ReadFile(pr.lat)
		if err != nil {
			return err
		}
		for i := 0; i+4 <= len(raw); i += 4 {
			total.lat = append(total.lat, binary.LittleEndian.Uint32(raw[i:]))
		}
	}
	slices.Sort(total.lat)
	pct := func(q float64) float64 {
		if len(total.lat) == 0 {
			return 0
		}
		return float64(total.lat[int(float64(len(total.lat)-1)*q)]) / 1000
	}
	stored, err := p.storedCount(devs, t0.Add(-time.Minute), total.acked)
	if err != nil {
		return err
	}
	perDev := float64(end-idle) / float64(max(connected, 1))
	genCPU := float64(genTicks) / 100 / duration.Seconds()
	fmt.Printf("%s%s: %d devices × 1/%s for %s (after %s warm-up): %.0f msg/s acked, ack p50 %.1f ms p99 %.1f ms max %.1f ms; "+
		"server RSS %.1f MiB (idle %.1f, peak %.1f) = %.1f KiB per device; server CPU %.2f cores (%.0f µs per message); generator CPU %.2f cores; "+
		"sent %d, acked %d, refused %d, errors %d, late sends %d; stored %d (acked == stored: %v)\n",
		labelPrefix(), *edge, connected, *interval, *duration, *warmup, float64(total.windowAcked)/duration.Seconds(),
		pct(0.5), pct(0.99), pct(1), float64(end)/1024, float64(idle)/1024, float64(peak)/1024, perDev, cpu,
		cpu*1e6/max(float64(total.windowAcked)/duration.Seconds(), 1), genCPU, total.sent, total.acked, total.refused, total.errs, total.late, stored, stored == total.acked)
	fmt.Println(summary(m0, m1))
	if total.firstErr != "" {
		fmt.Printf("first device error: %s\n", total.firstErr)
	}
	fmt.Printf("RESULT edge=%s label=%s devices=%d rate=%.0f p50_ms=%.1f p99_ms=%.1f max_ms=%.1f rss_kib_per_device=%.1f cpu=%.2f acked=%d stored=%d errors=%d gen_cpu=%.2f\n",
		*edge, *label, connected, float64(total.windowAcked)/duration.Seconds(), pct(0.5), pct(0.99), pct(1), perDev, cpu, total.acked, stored, total.errs, genCPU)
	if stored != total.acked {
		return fmt.Errorf("acked %d readings but %d are stored", total.acked, stored)
	}
	return nil
}

func labelPrefix() string {
	if *label == "" {
		return ""
	}
	return "[" + *label + "] "
}

// expect reads lines until one starts with word.
func expect(sc *bufio.Scanner, word string) (string, error) {
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), word) {
			return sc.Text(), nil
		}
		fmt.Println("worker:", sc.Text())
	}
	return "", fmt.Errorf("worker ended before %q", word)
}

// worker connects devices [from, to) of the device file, waits for
// "start <t0>" on stdin, then drives them until t0+warmup+duration.
func worker() error {
	raw, err := os.ReadFile(*devFile)
	if err != nil {
		return err
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")[*from:*to]
	devs := make([]device, len(lines))
	for i, l := range lines {
		f := strings.Fields(l)
		devs[i].id, _ = strconv.ParseInt(f[0], 10, 64)
		devs[i].sensor, _ = strconv.ParseInt(f[1], 10, 64)
		devs[i].key = f[2]
	}
	var dial func(d device) (client, error)
	switch *edge {
	case "mqtt":
		dial = func(d device) (client, error) { return dialMQTT(*mqttAddr, d) }
	case "ws":
		dial = func(d device) (client, error) { return dialWS(*wsAddr, d) }
	case "grpc":
		dial = func(d device) (client, error) { return dialGRPC(*api, d) }
	default:
		return fmt.Errorf("unknown edge %q", *edge)
	}
	clients := make([]client, len(devs))
	var connErrs int
	var firstErr error
	pace := time.NewTicker(time.Second / time.Duration(*connRate))
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i, d := range devs {
		<-pace.C
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			c, err := dial(d)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				connErrs++
				if firstErr == nil {
					firstErr = err
				}
				return
			}
			clients[i] = c
		}()
	}
	wg.Wait()
	pace.Stop()
	var loop deviceLoop = goroutineLoop(clients)
	if newLoop := map[string]func([]client) (deviceLoop, error){"mqtt": newMQTTLoop, "ws": newWSLoop}[*edge]; newLoop != nil {
		l, err := newLoop(clients)
		if err != nil {
			return err
		}
		if l != nil {
			loop = l
		}
	}
	fmt.Printf("ready %d %d %v\n", len(devs)-connErrs, connErrs, firstErr)
	var t0ns int64
	if _, err := fmt.Fscanf(os.Stdin, "start %d\n", &t0ns); err != nil {
		return err
	}
	t0 := time.Unix(0, t0ns)
	s := schedule{t0: t0, wStart: t0.Add(*warmup), end: t0.Add(*warmup + *duration), interval: *interval, ackTimeout: ackTimeout}
	// The generator's own CPU over the measured window (/proc/self/stat).
	cpu := make(chan int64, 1)
	go func() {
		time.Sleep(time.Until(s.wStart))
		c0 := cpuTicks(os.Getpid())
		time.Sleep(time.Until(s.end))
		cpu <- cpuTicks(os.Getpid()) - c0
	}()
	tot, lats := loop.run(s)
	genTicks := <-cpu
	buf := make([]byte, 4*len(lats))
	for i, l := range lats {
		binary.LittleEndian.PutUint32(buf[4*i:], l)
	}
	if err := os.WriteFile(*latFile, buf, 0o600); err != nil {
		return err
	}
	line := fmt.Sprintf("done %d %d %d %d %d %d %d", tot.sent, tot.acked, tot.refused, tot.errs, tot.late, tot.windowAcked, genTicks)
	if tot.firstErr != "" {
		line += " err=" + tot.firstErr
	}
	fmt.Println(line)
	return nil
}

// client is one connected device.
type client interface {
	// send sends reading k (timestamp at) and waits for its ack: ok is
	// false when the server refused it, err when the connection failed.
	send(k int, at time.Time) (ok bool, err error)
	close()
}

// payload is device d's reading k, stamped at, as JSON.
func payload(d device, k int, at time.Time) []byte { return appendPayload(nil, d, k, at) }

// appendPayload appends payload(d, k, at) to b.
func appendPayload(b []byte, d device, k int, at time.Time) []byte {
	b = append(b, `{"sensor_id":`...)
	b = strconv.AppendInt(b, d.sensor, 10)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, at.UnixMilli(), 10)
	b = append(b, `,"value":`...)
	b = strconv.AppendInt(b, int64(k), 10)
	return append(b, `.5}`...)
}

// ackTimeout bounds the wait for one ack.
const ackTimeout = 30 * time.Second
