// Command queryload measures the embedded data path end to end against a
// running iotplatform: HTTP batches → ingest → pipeline → durable SQLite
// commit → ack, then checks through QueryService that every acknowledged
// reading is queryable.
//
//	IOT_ADMIN_PASSWORD=benchbench bin/iotplatform serve --data-dir /tmp/qb &
//	go run ./bench/queryload -password benchbench -d 20s
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "API base URL")
	ingest := flag.String("http", "http://127.0.0.1:8083", "HTTP ingest gateway URL")
	password := flag.String("password", os.Getenv("IOT_ADMIN_PASSWORD"), "root password")
	conns := flag.Int("c", 8, "concurrent connections")
	batch := flag.Int("b", 1000, "readings per request")
	d := flag.Duration("d", 20*time.Second, "duration")
	sensors := flag.Int("sensors", 10, "sensors (one device each)")
	flag.Parse()
	fmt.Printf("machine: %d CPUs, %s; %d conns x %d-reading batches for %v over %d sensors\n", runtime.NumCPU(), runtime.Version(), *conns, *batch, *d, *sensors)

	tok := call("POST", *api+"/api/users/signin", "", map[string]string{"username": "root", "password": *password})["token"].(string)
	type dev struct{ sensor, token string }
	var devs []dev
	for i := range *sensors {
		dv := call("POST", *api+"/api/devices", tok, map[string]string{"name": fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)})
		id := dv["result"].(map[string]any)["id"].(string)
		s := call("POST", *api+"/api/devices/"+id+"/sensors", tok, map[string]string{"name": "s", "mapping": `{"type":"double"}`})
		k := call("GET", *api+"/api/devices/"+id+"/key", tok, nil)
		devs = append(devs, dev{fmt.Sprint(s["id"]), k["token"].(string)})
	}

	var acked atomic.Int64
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	stop := time.Now().Add(*d)
	start := time.Now()
	base := time.Now().UnixMilli() * 1000 // µs timestamps, unique per reading
	var wg sync.WaitGroup
	for c := range *conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			dv := devs[c%len(devs)]
			var buf bytes.Buffer
			var mine []time.Duration
			for time.Now().Before(stop) {
				buf.Reset()
				buf.WriteByte('[')
				for i := range *batch {
					if i > 0 {
						buf.WriteByte(',')
					}
					n := seq.Add(1)
					buf.WriteString(`{"sensor_id":` + dv.sensor + `,"timestamp":` + strconv.FormatInt(base+n, 10) + `,"value":` + strconv.FormatInt(n%1000, 10) + `}`)
				}
				buf.WriteByte(']')
				req, _ := http.NewRequest("POST", *ingest+"/", bytes.NewReader(buf.Bytes()))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+dv.token)
				s := time.Now()
				res, err := client.Do(req)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode == 200 {
					acked.Add(int64(*batch))
					mine = append(mine, time.Since(s))
				}
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p := func(q int) time.Duration { return lat[min(len(lat)-1, len(lat)*q/100)].Round(100 * time.Microsecond) }
	fmt.Printf("acknowledged (durable): %d readings in %v = %.0f readings/s; request p50 %v p99 %v\n", acked.Load(), el.Round(time.Millisecond), float64(acked.Load())/el.Seconds(), p(50), p(99))

	var stored int64
	for _, dv := range devs {
		a := call("GET", *api+"/api/sensors/"+dv.sensor+"/aggregate?from=0&interval=1000d&fn=count", tok, nil)
		for _, b := range a["buckets"].([]any) {
			n, _ := strconv.ParseInt(b.(map[string]any)["count"].(string), 10, 64)
			stored += n
		}
	}
	fmt.Printf("queryable right after the run (Aggregate count): %d of %d acknowledged\n", stored, acked.Load())
}

func call(method, url, tok string, body any) map[string]any {
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || json.Unmarshal(raw, &out) != nil {
		fmt.Fprintf(os.Stderr, "%s %s: %d %s\n", method, url, res.StatusCode, raw)
		os.Exit(1)
	}
	return out
}
