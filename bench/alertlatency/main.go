// Command alertlatency measures the time from a device's HTTP 200 (the
// reading is durable) to the webhook receiver getting the alert event that
// reading caused, against a running platform: it creates a device, a
// sensor and a threshold rule with a webhook to its own receiver, then
// sends readings that each cross the threshold (5, 15, 5, ...), one at a
// time. It prints p50/p90/p99 of ack → webhook beside the ack latency
// (send → 200) of the same requests. The receiver listens on 127.0.0.1,
// so the platform must allow it: serve with --webhook-allow-nets 127.0.0.1.
//
//	alertlatency -api http://127.0.0.1:8080 -http http://127.0.0.1:8083/ -password "$(cat data/admin-password)" -n 500
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sort"
	"time"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "API URL")
	ingest := flag.String("http", "http://127.0.0.1:8083/", "HTTP ingest URL")
	password := flag.String("password", os.Getenv("IOT_ADMIN_PASSWORD"), "root password")
	n := flag.Int("n", 500, "readings (each fires or resolves the rule)")
	flag.Parse()

	got := make(chan time.Time, 1024)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		got <- time.Now()
		w.WriteHeader(http.StatusNoContent)
	}))

	call := func(method, path, token string, body any) map[string]any {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, *api+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 200 {
			log.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, out)
		}
		return out
	}
	tok := call("POST", "/api/users/signin", "", map[string]string{"username": "root", "password": *password})["token"].(string)
	dev := call("POST", "/api/devices", tok, map[string]string{"name": fmt.Sprintf("lat-%d", time.Now().UnixNano())})["result"].(map[string]any)["id"].(string)
	sensor := call("POST", "/api/devices/"+dev+"/sensors", tok, map[string]string{"name": "t", "mapping": `{"type":"double"}`})["id"].(string)
	key := call("GET", "/api/devices/"+dev+"/key", tok, nil)["token"].(string)
	call("POST", "/api/rules", tok, map[string]any{"name": "lat", "sensor_id": sensor,
		"threshold": map[string]any{"op": "OP_ABOVE", "high": 10}, "webhook_url": "http://" + ln.Addr().String() + "/", "webhook_secret": "s"})
	time.Sleep(1500 * time.Millisecond) // the pipeline loads new rules every second

	base := time.Now().Add(-time.Hour).UnixMilli()
	var hook, ack []time.Duration
	for i := range *n {
		v := 5
		if i%2 == 0 {
			v = 15
		}
		req, _ := http.NewRequest("POST", *ingest, bytes.NewReader(fmt.Appendf(nil, `{"sensor_id":%s,"timestamp":%d,"value":%d}`, sensor, base+int64(i), v)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+key)
		sent := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		acked := time.Now()
		if resp.StatusCode != 200 {
			log.Fatalf("ingest: %d", resp.StatusCode)
		}
		select {
		case at := <-got:
			hook = append(hook, at.Sub(acked))
		case <-time.After(10 * time.Second):
			log.Fatalf("no webhook for reading %d", i)
		}
		ack = append(ack, acked.Sub(sent))
	}
	pct := func(ds []time.Duration, q float64) time.Duration {
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[min(len(ds)-1, int(q*float64(len(ds))))].Round(10 * time.Microsecond)
	}
	fmt.Printf("readings=%d ack→webhook p50=%v p90=%v p99=%v max=%v | ack (send→200) p50=%v p99=%v\n",
		*n, pct(hook, .5), pct(hook, .9), pct(hook, .99), pct(hook, 1), pct(ack, .5), pct(ack, .99))
}
