package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/services/pipeline"
	"github.com/iotplatform/iotplatform/services/query"
)

// adminReg answers every registry question for the benchmarks' admin caller.
type adminReg struct{ fixedSensor }

func (adminReg) GetDevice(context.Context, int64) (registry.Device, error) {
	return registry.Device{ID: 1, OwnerID: 1}, nil
}

func (adminReg) ListDevices(context.Context, registry.DeviceFilter, registry.Page) ([]registry.Device, error) {
	return nil, nil
}

func (adminReg) HasGrant(context.Context, int64, int64) (bool, error) { return true, nil }

// asAdmin authenticates every request as an admin user.
func asAdmin(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(authn.WithPrincipal(r.Context(), authn.Principal{Kind: authn.KindUser, ID: 1, Admin: true})))
	})
}

// benchLive measures ack → visible in Subscribe: batches go through the
// pipeline handler (what the embedded bus calls before the device is acked)
// while a Connect client streams the sensor.
func benchLive(ctx context.Context, log *slog.Logger, st store.Store, batches, size int) {
	p := pipeline.New(log, fixedSensor{}, st, pipeline.Config{}, nil)
	svc := query.New(log, adminReg{}, st, query.Config{})
	mux := http.NewServeMux()
	mux.Handle(queryv1connect.NewQueryServiceHandler(svc))
	srv := httptest.NewServer(asAdmin(mux))
	defer srv.Close()
	client := queryv1connect.NewQueryServiceClient(srv.Client(), srv.URL, connect.WithGRPC())
	_ = client
	client = queryv1connect.NewQueryServiceClient(srv.Client(), srv.URL)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Subscribe(cctx, &queryv1.SubscribeRequest{SensorId: []int64{9}})
	check(err)
	if !stream.Receive() {
		check(stream.Err())
	}
	var mu sync.Mutex
	acked := map[int64]time.Time{}
	var lat []time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		seen := 0
		for seen < batches*size && stream.Receive() {
			now := time.Now()
			mu.Lock()
			for _, r := range stream.Msg().GetReadings() {
				seen++
				if at, ok := acked[r.GetTimestamp().AsTime().UnixNano()]; ok {
					lat = append(lat, now.Sub(at))
				}
			}
			mu.Unlock()
		}
	}()
	base := time.Now().UnixNano()
	start := time.Now()
	for b := range batches {
		recs := make([]*busv1.Record, size)
		for i := range recs {
			recs[i] = &busv1.Record{DeviceId: 1, SensorId: 9, TimestampNs: base + int64(b*size+i), Value: &busv1.Record_DoubleValue{DoubleValue: 1}}
		}
		check(p.Handle(ctx, recs))
		at := time.Now()
		mu.Lock()
		for _, r := range recs {
			acked[r.TimestampNs] = at
		}
		mu.Unlock()
	}
	el := time.Since(start)
	<-done
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p int) time.Duration { return lat[min(len(lat)-1, len(lat)*p/100)].Round(10 * time.Microsecond) }
	fmt.Printf("embedded ack -> visible in Subscribe (Connect stream, %d batches x %d, %.0f readings/s written): p50 %v p99 %v max %v (target p99 < 1s)\n",
		batches, size, float64(batches*size)/el.Seconds(), pct(50), pct(99), lat[len(lat)-1].Round(10*time.Microsecond))
}

// benchSearchProxy compares the same query sent straight to OpenSearch (with
// the sensor filter) and through the consumer search proxy.
func benchSearchProxy(ctx context.Context, log *slog.Logger, url string, st interface {
	store.Store
	store.Searcher
}, index string, sensor int64, iters int) {
	svc := query.New(log, adminReg{}, st, query.Config{})
	srv := httptest.NewServer(asAdmin(svc.SearchHandler(st)))
	defer srv.Close()
	userQuery := `{"query":{"range":{"value_num":{"gte":1000}}},"size":10,"sort":[{"ts_ns":"desc"}],"aggs":{"m":{"avg":{"field":"value_num"}}}}`
	direct := fmt.Sprintf(`{"query":{"bool":{"filter":[{"term":{"sensor_id":%d}}],"must":[{"range":{"value_num":{"gte":1000}}}]}},"size":10,"sort":[{"ts_ns":"desc"}],"aggs":{"m":{"avg":{"field":"value_num"}}}}`, sensor)
	run := func(target, body string) func(int) time.Duration {
		return measure(iters, func() {
			res, err := http.Post(target, "application/json", strings.NewReader(body))
			check(err)
			res.Body.Close()
			if res.StatusCode != 200 {
				panic(fmt.Sprintf("search %s: %d", target, res.StatusCode))
			}
		})
	}
	d := run(url+"/"+index+"/_search", direct)
	p := run(fmt.Sprintf("%s/api/consumers/consume/%d/_search", srv.URL, sensor), userQuery)
	fmt.Printf("search: direct to OpenSearch p50 %v p95 %v; through the proxy p50 %v p95 %v; overhead ratio p50 %.2f p95 %.2f (target <= 1.2)\n",
		d(50), d(95), p(50), p(95), float64(p(50))/float64(d(50)), float64(p(95))/float64(d(95)))
}
