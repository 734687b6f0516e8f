package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
)

// platform talks to the API as root: provisioning and the stored count.
type platform struct {
	api   string
	token string
	hc    *http.Client
}

func (p *platform) auth() connect.ClientOption {
	return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
		return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
			req.Header().Set("Authorization", "Bearer "+p.token)
			return next(ctx, req)
		}
	}))
}

// provision signs in as root and imports n devices with one double sensor
// each (external ids fleet-0…, so a second run on the same server reuses
// them), returning their keys.
func (p *platform) provision(password string, n int) ([]device, error) {
	p.hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}, Timeout: 5 * time.Minute}
	body, _ := json.Marshal(map[string]string{"username": "root", "password": password})
	resp, err := p.hc.Post(p.api+"/api/users/signin", "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("sign in: %d %s", resp.StatusCode, data)
	}
	var in struct{ Token string }
	if err := json.Unmarshal(data, &in); err != nil {
		return nil, fmt.Errorf("sign in: %w", err)
	}
	p.token = in.Token
	cc := corev1connect.NewCoreServiceClient(p.hc, p.api, p.auth())
	devs := make([]device, 0, n)
	const batch = 10_000
	for from := 0; from < n; from += batch {
		req := &corev1.ImportDevicesRequest{ReturnKeys: true}
		for i := from; i < min(from+batch, n); i++ {
			req.Devices = append(req.Devices, &corev1.DeviceImport{
				ExternalId: "fleet-" + strconv.Itoa(i), Name: "fleet-" + strconv.Itoa(i),
				Sensors: []*corev1.SensorImport{{Name: "temp", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE, Unit: "C"}},
			})
		}
		res, err := cc.ImportDevices(context.Background(), req)
		if err != nil {
			return nil, fmt.Errorf("import devices: %w", err)
		}
		for _, r := range res.Results {
			if r.Key == "" || len(r.SensorIds) == 0 || r.SensorIds[0] == 0 {
				return nil, fmt.Errorf("import devices: device %d came back without key or sensor", r.Id)
			}
			devs = append(devs, device{id: r.Id, sensor: r.SensorIds[0], key: r.Key})
		}
	}
	return devs, nil
}

// storedCount counts the stored readings of every device's sensor since
// from (QueryService.Aggregate, count), waiting up to 60 s for the
// pipeline to catch up with want.
func (p *platform) storedCount(devs []device, from time.Time, want int64) (int64, error) {
	qc := queryv1connect.NewQueryServiceClient(p.hc, p.api, p.auth())
	count := func() (int64, error) {
		var total atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		next := atomic.Int64{}
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1) - 1)
					if i >= len(devs) {
						return
					}
					res, err := qc.Aggregate(context.Background(), &queryv1.AggregateRequest{
						SensorId: devs[i].sensor, From: strconv.FormatInt(from.UnixMilli(), 10),
						To: strconv.FormatInt(time.Now().Add(time.Hour).UnixMilli(), 10), Interval: "1d", Fn: []string{"count"}})
					if err != nil {
						firstErr.CompareAndSwap(nil, err)
						return
					}
					for _, b := range res.Buckets {
						total.Add(b.Count)
					}
				}
			}()
		}
		wg.Wait()
		if err, _ := firstErr.Load().(error); err != nil {
			return 0, fmt.Errorf("count stored readings: %w", err)
		}
		return total.Load(), nil
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := count()
		if err != nil || got >= want || time.Now().After(deadline) {
			return got, err
		}
		time.Sleep(2 * time.Second)
	}
}

// rss is the VmRSS of process pid in KiB.
func rss(pid int) int64 {
	return statusField(pid, "VmRSS:")
}

func threads(pid int) int64 {
	return statusField(pid, "Threads:")
}

func statusField(pid int, name string) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name) {
			f := strings.Fields(l)
			v, _ := strconv.ParseInt(f[1], 10, 64)
			return v
		}
	}
	return 0
}

// cpuTicks is the process's user+system CPU time in clock ticks (1/100 s).
func cpuTicks(pid int) int64 {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}
