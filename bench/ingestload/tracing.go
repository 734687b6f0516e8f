package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

var (
	apiB    = flag.String("api-b", "", "-mode=tracing-ab: API URL of the second iotplatform (tracing on)")
	httpGWB = flag.String("http-gw-b", "", "-mode=tracing-ab: HTTP gateway address of the second iotplatform")
)

// tracingAB measures the cost of tracing: two running binaries with the
// same flags except tracing (A: off, B: on, e.g. 1 % sampling to an OTLP
// sink), driven alternately with single-reading HTTP requests (the full
// durable path). The order alternates (AB, BA, AB, ...) and every run
// starts only once both write-ahead logs are applied, so neither process's
// pipeline catching up steals CPU from the other's run; the median of the
// per-pair B/A ratios is the overhead.
func tracingAB() {
	tokA, sensorA := provision()
	apiA := *apiURL
	*apiURL = *apiB
	tokB, sensorB := provision()
	*apiURL = apiA
	bodyA := []byte(`{"sensor_id":"` + sensorA + `","timestamp":1526717967,"value":"21.5"}`)
	bodyB := []byte(`{"sensor_id":"` + sensorB + `","timestamp":1526717967,"value":"21.5"}`)
	gwA, gwB := "http://"+*httpGW, "http://"+*httpGWB
	// run also measures the server's CPU time per acknowledged reading
	// (process_cpu_seconds_total over iot_ingest_readings_total): less
	// sensitive than throughput to what else the machine runs.
	run := func(gw, tok string, body []byte) (result, float64) {
		drained(gwA + "/metrics")
		drained(gwB + "/metrics")
		cpu0, _ := gauge(gw+"/metrics", "process_cpu_seconds_total")
		n0 := accepted(gw + "/metrics")
		r := httpLoad(gw+"/", tok, body)
		drained(gw + "/metrics") // the pipeline's work for these readings counts too
		cpu1, _ := gauge(gw+"/metrics", "process_cpu_seconds_total")
		return r, (cpu1 - cpu0) / max(accepted(gw+"/metrics")-n0, 1) * 1e6
	}
	var ratios, cpuRatios []float64
	for i := 0; i < *runs; i++ {
		var a, b result
		var ca, cb float64
		if i%2 == 0 {
			a, ca = run(gwA, tokA, bodyA)
			b, cb = run(gwB, tokB, bodyB)
		} else {
			b, cb = run(gwB, tokB, bodyB)
			a, ca = run(gwA, tokA, bodyA)
		}
		fmt.Printf("run %d  tracing off:          %s  server CPU %.1f µs/reading\n", i+1, a, ca)
		fmt.Printf("run %d  tracing on, sampled:  %s  server CPU %.1f µs/reading\n", i+1, b, cb)
		ratios = append(ratios, b.rate/a.rate)
		cpuRatios = append(cpuRatios, cb/ca)
	}
	slices.Sort(ratios)
	slices.Sort(cpuRatios)
	fmt.Printf("throughput on/off %.3f, median %.3f\n", ratios, ratios[len(ratios)/2])
	fmt.Printf("server CPU per reading on/off %.3f, median %.3f\n", cpuRatios, cpuRatios[len(cpuRatios)/2])
}

// accepted is the HTTP edge's accepted readings counter of a process.
func accepted(metricsURL string) float64 {
	v, _ := gauge(metricsURL, `iot_ingest_readings_total{protocol="http",result="accepted"}`)
	return v
}

// drained waits (at most 60 s) until the process behind a /metrics URL has
// applied its whole write-ahead log (iot_bus_lag_records 0).
func drained(metricsURL string) {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if v, ok := gauge(metricsURL, "iot_bus_lag_records"); ok && v == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// gauge reads the first sample of a metric from a /metrics page.
func gauge(url, name string) (float64, bool) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+"{") || strings.HasPrefix(l, name+" ") || (strings.HasSuffix(name, "}") && strings.HasPrefix(l, name)) {
			f, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			return f, err == nil
		}
	}
	return 0, false
}
