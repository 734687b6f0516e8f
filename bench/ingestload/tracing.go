package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

var (
	apiB    = flag.String("api-b", "", "-mode=tracing-ab: API URL of the second iotplatform (tracing on)")
	httpGWB = flag.String("http-gw-b", "", "-mode=tracing-ab: HTTP gateway address of the second iotplatform")
)

// tracingAB measures the cost of tracing: two running binaries with the
// same flags except tracing (A: off, B: on, e.g. 1 % sampling to an OTLP
// sink), driven alternately with single-reading HTTP requests (the full
// durable path); the median of the per-pair B/A ratios is the overhead.
func tracingAB() {
	tokA, sensorA := provision()
	apiA := *apiURL
	*apiURL = *apiB
	tokB, sensorB := provision()
	*apiURL = apiA
	bodyA := []byte(`{"sensor_id":"` + sensorA + `","timestamp":1526717967,"value":"21.5"}`)
	bodyB := []byte(`{"sensor_id":"` + sensorB + `","timestamp":1526717967,"value":"21.5"}`)
	pairs(func() result { return httpLoad("http://"+*httpGW+"/", tokA, bodyA) },
		func() result { return httpLoad("http://"+*httpGWB+"/", tokB, bodyB) },
		"tracing off:          ", "tracing on, sampled:  ")
	fmt.Printf("B (traced) ingest counters: %s\n", counter("http://"+*httpGWB+"/metrics", "iot_ingest_readings_total"))
}

// counter returns the lines of a /metrics page for one metric (a sanity
// check that B did the work).
func counter(url, name string) string {
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+"{") && strings.Contains(l, `protocol="http"`) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "; ")
}
