// Command coreload is a closed-loop load generator for Core endpoints: N
// virtual users each send the next request as soon as the previous answer
// arrives. It measures a bare net/http handler on the same machine in the
// same run as the reference, and reports avg/p50/p95/p99 and requests/s.
//
//	coreload -api http://127.0.0.1:8080 -password <root password> -vus 100 -duration 20s
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "API base URL")
	password := flag.String("password", os.Getenv("IOT_ADMIN_PASSWORD"), "root password")
	vus := flag.Int("vus", 100, "concurrent virtual users")
	dur := flag.Duration("duration", 20*time.Second, "duration of each scenario")
	signinVUs := flag.Int("signin-vus", 8, "virtual users for the KDF-bound sign-in scenario")
	only := flag.String("only", "", "run only scenarios whose name contains this (the reference always runs)")
	flag.Parse()
	if err := run(*api, *password, *vus, *signinVUs, *dur, *only); err != nil {
		fmt.Fprintln(os.Stderr, "coreload:", err)
		os.Exit(1)
	}
}

type scenario struct {
	name string
	vus  int
	call func(ctx context.Context) error
}

func run(api, password string, vus, signinVUs int, dur time.Duration, only string) error {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConns: 1000, MaxIdleConnsPerHost: 1000, IdleConnTimeout: time.Minute}}
	token, deviceID, err := setup(hc, api, password)
	if err != nil {
		return err
	}
	cc := corev1connect.NewCoreServiceClient(hc, api, connect.WithInterceptors(auth(token)))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	bare := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })}
	go bare.Serve(ln)
	defer bare.Close()
	bareURL := "http://" + ln.Addr().String() + "/"

	get := func(url string) func(context.Context) error {
		return func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("authorization", "Bearer "+token)
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}
	}
	scenarios := []scenario{
		{"reference: bare net/http 200", vus, get(bareURL)},
		{"GetDevice REST", vus, get(fmt.Sprintf("%s/api/devices/%d", api, deviceID))},
		{"GetDevice Connect", vus, func(ctx context.Context) error {
			_, err := cc.GetDevice(ctx, &corev1.GetDeviceRequest{Id: deviceID})
			return err
		}},
		{"ListSensors REST", vus, get(fmt.Sprintf("%s/api/devices/%d/sensors/", api, deviceID))},
		{"ListSensors Connect", vus, func(ctx context.Context) error {
			_, err := cc.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: deviceID})
			return err
		}},
		{"SignIn REST (argon2id m=19MiB t=2 p=1)", signinVUs, func(ctx context.Context) error {
			body := fmt.Sprintf(`{"username":"root","password":%q}`, password)
			req, _ := http.NewRequestWithContext(ctx, "POST", api+"/api/users/signin", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		}},
	}
	// The reference runs again right before every scenario: on a shared
	// machine only a ratio to an adjacent reference means something.
	fmt.Printf("| scenario | VUs | requests/s | avg ms | p50 ms | p95 ms | p99 ms | errors | bare req/s just before | req/s vs bare | p95 vs bare |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
	for i, s := range scenarios {
		if i == 0 || !strings.Contains(s.name, only) {
			continue
		}
		ref := load(scenarios[0], dur)
		r := load(s, dur)
		fmt.Printf("| %s | %d | %.0f | %.2f | %.2f | %.2f | %.2f | %d | %.0f (p95 %.2f) | %.2f | %.1f× |\n", s.name, s.vus, r.rps, ms(r.avg), ms(r.p(50)), ms(r.p(95)), ms(r.p(99)), r.errors,
			ref.rps, ms(ref.p(95)), r.rps/ref.rps, float64(r.p(95))/float64(ref.p(95)))
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type result struct {
	lat    []time.Duration
	avg    time.Duration
	rps    float64
	errors int
}

func (r result) p(q int) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[(len(r.lat)-1)*q/100]
}

// load runs s for d with s.vus closed-loop users after a short warm-up.
func load(s scenario, d time.Duration) result {
	warm, cancelWarm := context.WithTimeout(context.Background(), d/10)
	drive(warm, s, nil)
	cancelWarm()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all []time.Duration
	errs := 0
	start := time.Now()
	drive(ctx, s, func(l time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs++
			return
		}
		all = append(all, l)
	})
	elapsed := time.Since(start)
	slices.Sort(all)
	var sum time.Duration
	for _, l := range all {
		sum += l
	}
	r := result{lat: all, errors: errs, rps: float64(len(all)) / elapsed.Seconds()}
	if len(all) > 0 {
		r.avg = sum / time.Duration(len(all))
	}
	return r
}

func drive(ctx context.Context, s scenario, record func(time.Duration, error)) {
	var wg sync.WaitGroup
	for range s.vus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				t0 := time.Now()
				err := s.call(context.Background())
				if record != nil && ctx.Err() == nil {
					record(time.Since(t0), err)
				}
			}
		}()
	}
	wg.Wait()
}

func auth(token string) connect.Interceptor {
	return connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+token)
			return next(ctx, req)
		}
	})
}

// setup signs in and creates a device with 10 sensors to read.
func setup(hc *http.Client, api, password string) (string, int64, error) {
	post := func(path, token string, body any, out any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", api+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("authorization", "Bearer "+token)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		return json.NewDecoder(resp.Body).Decode(out)
	}
	var in struct{ Token string }
	if err := post("/api/users/signin", "", map[string]string{"username": "root", "password": password}, &in); err != nil {
		return "", 0, err
	}
	var dev struct {
		Result struct {
			ID int64 `json:"id,string"`
		}
	}
	name := fmt.Sprintf("bench-%d", time.Now().UnixNano())
	if err := post("/api/devices/", in.Token, map[string]string{"name": name}, &dev); err != nil {
		return "", 0, err
	}
	for i := range 10 {
		var s map[string]any
		if err := post(fmt.Sprintf("/api/devices/%d/sensors/", dev.Result.ID), in.Token, map[string]string{"name": fmt.Sprintf("s%d", i), "mapping": `{"type":"double"}`}, &s); err != nil {
			return "", 0, err
		}
	}
	return in.Token, dev.Result.ID, nil
}
