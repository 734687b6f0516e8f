package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/iotplatform/iotplatform/bench/internal/inproc"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// benchLive measures device ack → visible in Subscribe on the platform as
// `iotplatform serve` runs it (embedded defaults: write-ahead-log bus,
// SQLite store, in this process through the app's own constructor): one
// device sends batches of size readings back to back over the HTTP edge
// while root streams the sensor over Connect; each reading's latency runs
// from the HTTP 200 of its batch (durable in the log) to its arrival on the
// stream.
func benchLive(ctx context.Context, batches, size int) {
	p, err := inproc.Start(nil)
	check(err)
	defer p.Close()
	dev, err := inproc.Provision(p.API, p.Password, 1, "double")
	check(err)
	sensor, _ := strconv.ParseInt(dev.Sensors[0], 10, 64)
	c := iot.New(p.API)
	check(c.SignIn(ctx, "root", p.Password))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Query.Subscribe(cctx, &queryv1.SubscribeRequest{SensorId: []int64{sensor}})
	check(err)
	if !stream.Receive() {
		check(stream.Err())
	}
	// Readings are told apart by their value (reading n of the run has
	// value n); the stream records when each arrives, the sender when its
	// batch was acknowledged.
	seen := map[float64]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(seen) < batches*size && stream.Receive() {
			now := time.Now()
			for _, r := range stream.Msg().GetReadings() {
				seen[r.GetDoubleValue()] = now
			}
		}
	}()
	acked := make([]time.Time, batches*size)
	gw := "http://" + p.Addr("http") + "/"
	base := time.Now().UnixMilli()
	var body bytes.Buffer
	start := time.Now()
	for b := range batches {
		body.Reset()
		body.WriteByte('[')
		for i := range size {
			if i > 0 {
				body.WriteByte(',')
			}
			n := b*size + i
			fmt.Fprintf(&body, `{"sensor_id":%d,"timestamp":%d,"value":%d}`, sensor, base+int64(n), n)
		}
		body.WriteByte(']')
		req, _ := http.NewRequest(http.MethodPost, gw, bytes.NewReader(body.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+dev.Token)
		resp, err := http.DefaultClient.Do(req)
		check(err)
		at := time.Now()
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			check(fmt.Errorf("ingest: HTTP %d", resp.StatusCode))
		}
		for i := range size {
			acked[b*size+i] = at
		}
	}
	el := time.Since(start)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		cancel()
		<-done
	}
	// A reading on the stream before its batch's answer was read counts
	// as 0.
	var lat []time.Duration
	for n, at := range acked {
		if v, ok := seen[float64(n)]; ok {
			lat = append(lat, max(v.Sub(at), 0))
		}
	}
	if len(lat) == 0 {
		check(fmt.Errorf("no reading arrived on the stream"))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p int) time.Duration { return lat[min(len(lat)-1, len(lat)*p/100)].Round(10 * time.Microsecond) }
	fmt.Printf("embedded device ack -> visible in Subscribe (HTTP batches of %d, %d batches, %.0f readings/s acked; %d of %d matched): p50 %v p99 %v max %v (target p99 < 1s)\n",
		size, batches, float64(batches*size)/el.Seconds(), len(lat), batches*size, pct(50), pct(99), lat[len(lat)-1].Round(10*time.Microsecond))
}
