// Package bustest is the conformance suite every bus backend passes:
// bustest.Run(t, factory).
package bustest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
)

// Backend is one isolated bus instance (fresh topics/groups) for a sub-test.
type Backend struct {
	Pub bus.Publisher
	// NewSub returns a subscriber; subscribers of one Backend share a
	// consumer group (a second one takes over after the first stopped).
	NewSub func() bus.Subscriber
	// Unavailable returns a publisher that cannot make records durable
	// (no subscriber, unreachable broker) with a short timeout.
	Unavailable func() bus.Publisher
}

// Factory creates a Backend for t; cleanup is registered on t.
type Factory func(t *testing.T) Backend

// Run runs the conformance suite.
func Run(t *testing.T, f Factory) {
	t.Run("DeliversEveryRecordInDeviceOrder", func(t *testing.T) { testDelivers(t, f(t)) })
	t.Run("UnavailableWhenNothingCanTakeIt", func(t *testing.T) { testUnavailable(t, f(t)) })
	t.Run("RedeliversAfterHandlerError", func(t *testing.T) { testRedeliver(t, f(t)) })
	t.Run("CarriesTraceContext", func(t *testing.T) { testTraceContext(t, f(t)) })
	t.Run("EmptyPublishIsNoop", func(t *testing.T) {
		b := f(t)
		if err := b.Pub.Publish(t.Context(), nil); err != nil {
			t.Fatalf("Publish(nil) = %v", err)
		}
	})
}

// Rec builds a record for tests.
func Rec(device, sensor, seq int64) *busv1.Record {
	return &busv1.Record{DeviceId: device, SensorId: sensor, TimestampNs: seq,
		Value: &busv1.Record_LongValue{LongValue: seq}, ReceiveTimeNs: seq, Protocol: "test"}
}

// collector records what a handler saw.
type collector struct {
	mu   sync.Mutex
	seen []*busv1.Record
	ch   chan struct{}
	// failFirst makes the first n handler calls fail.
	failFirst int
	calls     int
}

func newCollector() *collector { return &collector{ch: make(chan struct{}, 1)} }

func (c *collector) handle(_ context.Context, recs []*busv1.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	if c.calls <= c.failFirst {
		return errors.New("injected handler failure")
	}
	c.seen = append(c.seen, recs...)
	select {
	case c.ch <- struct{}{}:
	default:
	}
	return nil
}

func (c *collector) waitFor(t *testing.T, n int) []*busv1.Record {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		c.mu.Lock()
		if len(c.seen) >= n {
			out := append([]*busv1.Record(nil), c.seen...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("handler saw %d records, want %d", len(c.seen), n)
		}
	}
}

func subscribe(t *testing.T, s bus.Subscriber, h bus.Handler) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Subscribe(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Subscribe returned %v", err)
		}
	})
}

// publishRetry publishes like a device would: retrying refused batches.
func publishRetry(t *testing.T, p bus.Publisher, recs []*busv1.Record) {
	t.Helper()
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := p.Publish(ctx, recs)
		cancel()
		if err == nil {
			return
		}
		if !errors.Is(err, bus.ErrUnavailable) || i > 50 {
			t.Fatalf("Publish: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func testDelivers(t *testing.T, b Backend) {
	c := newCollector()
	subscribe(t, b.NewSub(), c.handle)
	const devices, perDevice = 4, 50
	var wg sync.WaitGroup
	for d := int64(1); d <= devices; d++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); i < perDevice; i += 5 {
				publishRetry(t, b.Pub, []*busv1.Record{Rec(d, d*10, i), Rec(d, d*10, i+1), Rec(d, d*10+1, i+2), Rec(d, d*10, i+3), Rec(d, d*10, i+4)})
			}
		}()
	}
	wg.Wait()
	seen := c.waitFor(t, devices*perDevice)
	last := map[int64]int64{}
	count := map[string]int{}
	for _, r := range seen {
		count[fmt.Sprintf("%d/%d", r.GetDeviceId(), r.GetTimestampNs())]++
		if prev, ok := last[r.GetDeviceId()]; ok && r.GetTimestampNs() <= prev {
			t.Fatalf("device %d: record %d after %d (order lost)", r.GetDeviceId(), r.GetTimestampNs(), prev)
		}
		last[r.GetDeviceId()] = r.GetTimestampNs()
		if r.GetLongValue() != r.GetTimestampNs() || r.GetProtocol() != "test" {
			t.Fatalf("record mangled: %v", r)
		}
	}
	if len(count) != devices*perDevice {
		t.Fatalf("saw %d distinct records, want %d", len(count), devices*perDevice)
	}
}

func testUnavailable(t *testing.T, b Backend) {
	if b.Unavailable == nil {
		t.Skip("backend cannot simulate unavailability")
	}
	p := b.Unavailable()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := p.Publish(ctx, []*busv1.Record{Rec(1, 1, 1)})
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Publish on an unavailable bus = %v, want ErrUnavailable", err)
	}
}

func testRedeliver(t *testing.T, b Backend) {
	c := newCollector()
	c.failFirst = 2
	subscribe(t, b.NewSub(), c.handle)
	publishRetry(t, b.Pub, []*busv1.Record{Rec(7, 70, 1), Rec(7, 70, 2)})
	seen := c.waitFor(t, 2)
	got := map[int64]bool{}
	for _, r := range seen {
		got[r.GetTimestampNs()] = true
	}
	if !got[1] || !got[2] {
		t.Fatalf("after handler errors the records were not delivered again: %v", seen)
	}
}

// testTraceContext: a record's traceparent reaches the subscriber unchanged,
// and records without one stay without.
func testTraceContext(t *testing.T, b Backend) {
	c := newCollector()
	subscribe(t, b.NewSub(), c.handle)
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traced, plain := Rec(8, 80, 1), Rec(8, 80, 2)
	traced.Traceparent = tp
	publishRetry(t, b.Pub, []*busv1.Record{traced, plain})
	seen := c.waitFor(t, 2)
	got := map[int64]string{}
	for _, r := range seen {
		got[r.GetTimestampNs()] = r.GetTraceparent()
	}
	if got[1] != tp || got[2] != "" {
		t.Fatalf("traceparents after the bus: traced %q, plain %q; want %q and empty", got[1], got[2], tp)
	}
	if traced.GetTraceparent() != tp {
		t.Fatalf("Publish changed the caller's record: traceparent %q", traced.GetTraceparent())
	}
}
