package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// wsDevice is one connection of TestWSLoop_Gateway: a fixture device and a
// sensor (one of another type than the readings' doubles is refused).
type wsDevice struct {
	id, sensor int64
	refused    bool
}

// TestWSLoop_Gateway drives WebSocket devices through the real gateway
// (epoll edge, the real ingest service, a recording sink) from the epoll
// loop and from goroutines: the upgrade, every reading framed, acked in
// order and stored, a refused one counted as refused, and the gateway's
// pings (every 10 ms; a connection without pong is ended after 100 ms)
// answered.
func TestWSLoop_Gateway(t *testing.T) {
	devices := []wsDevice{
		{id: ingesttest.DeviceA, sensor: ingesttest.SensorDouble},
		{id: ingesttest.DeviceB, sensor: ingesttest.SensorOfB},
		{}, // did not connect
		{id: ingesttest.DeviceA, sensor: ingesttest.SensorLong, refused: true},
		{id: ingesttest.DeviceA, sensor: ingesttest.SensorDouble},
	}
	for _, epoll := range []bool{true, false} {
		t.Run(map[bool]string{true: "epoll", false: "goroutines"}[epoll], func(t *testing.T) {
			e := ingesttest.New(t, ingesttest.Options{})
			g := gwws.New(e.Log, e.Verifier, e.Service, gwws.Config{PingInterval: 10 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
			srv := httptest.NewServer(g)
			defer func() {
				srv.Close()
				_ = g.Close()
			}()
			addr := strings.TrimPrefix(srv.URL, "http://")
			clients := make([]client, len(devices))
			for i, d := range devices {
				if d.id == 0 {
					continue
				}
				c, err := dialWS(addr, device{id: d.id, sensor: d.sensor, key: e.DeviceToken(t, d.id)})
				if err != nil {
					t.Fatal(err)
				}
				clients[i] = c
			}
			var loop deviceLoop = goroutineLoop(clients)
			var wl *wsLoop
			if epoll {
				l, err := newWSLoop(clients)
				if err != nil {
					t.Fatal(err)
				}
				wl = l.(*wsLoop)
				loop = wl
			}
			s := schedule{interval: 20 * time.Millisecond, ackTimeout: time.Second}
			s.t0 = time.Now().Add(20 * time.Millisecond)
			s.wStart = s.t0.Add(60 * time.Millisecond)
			s.end = s.wStart.Add(300 * time.Millisecond)
			r, lats := loop.run(s)

			var want result
			stored := map[int64]int{}
			for i, d := range devices {
				if d.id == 0 {
					continue
				}
				all, window := scheduled(s, i, len(devices))
				want.sent += int64(all)
				if d.refused {
					want.refused += int64(all)
					continue
				}
				want.acked += int64(all)
				want.windowAcked += int64(window)
				stored[d.sensor] += all
			}
			if r.sent != want.sent || r.acked != want.acked || r.refused != want.refused || r.windowAcked != want.windowAcked ||
				int64(len(lats)) != want.windowAcked || r.errs != 0 || r.firstErr != "" {
				t.Errorf("got %+v (%d latencies), want sent %d, acked %d, refused %d, window %d, no errors",
					r, len(lats), want.sent, want.acked, want.refused, want.windowAcked)
			}
			got := map[int64]int{}
			var values []float64 // device B's, in order
			for _, rec := range e.Sink.Records() {
				got[rec.SensorId]++
				if rec.SensorId == ingesttest.SensorOfB {
					values = append(values, rec.GetDoubleValue())
				}
			}
			if len(got) != len(stored) || got[ingesttest.SensorDouble] != stored[ingesttest.SensorDouble] || got[ingesttest.SensorOfB] != stored[ingesttest.SensorOfB] {
				t.Errorf("stored per sensor %v, want %v", got, stored)
			}
			for k, v := range values {
				if v != float64(k)+0.5 {
					t.Errorf("device B's reading %d stored as %v", k, v)
					break
				}
			}
			if wl != nil && wl.pongs == 0 {
				t.Error("no ping answered")
			}
		})
	}
}
