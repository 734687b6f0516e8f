package telemetry_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/internal/telemetry/otlptest"
)

type fakePub struct{ n int }

func (p *fakePub) Publish(context.Context, []*busv1.Record) error { p.n++; return nil }

type fakeWriter struct{ wrote int }

func (w *fakeWriter) Write(_ context.Context, rs []store.Reading) error {
	w.wrote += len(rs)
	return nil
}
func (w *fakeWriter) WriteDeadLetters(context.Context, []deadletter.Letter) error {
	return nil
}

func TestOff_WrappersAreIdentityAndStartAllocatesNothing(t *testing.T) {
	p, err := telemetry.Setup(context.Background(), telemetry.Config{SampleRatio: -1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Enabled() || telemetry.Enabled() {
		t.Fatal("tracing on without an endpoint")
	}
	pub := &fakePub{}
	if telemetry.Publisher(pub) != bus.Publisher(pub) {
		t.Fatal("Publisher wrapped while tracing is off")
	}
	w := &fakeWriter{}
	if telemetry.Writer(w) != store.Writer(w) {
		t.Fatal("Writer wrapped while tracing is off")
	}
	ctx := context.Background()
	allocs := testing.AllocsPerRun(1000, func() {
		c, span := telemetry.Start(ctx, "x", trace.SpanKindInternal)
		telemetry.StampRecords(c, nil)
		span.End()
	})
	if allocs != 0 {
		t.Fatalf("Start with tracing off: %v allocations per call, want 0", allocs)
	}
}

// BenchmarkStart_Off is the per-span cost of instrumented code while tracing
// is off (0 allocs).
func BenchmarkStart_Off(b *testing.B) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, span := telemetry.Start(ctx, "x", trace.SpanKindInternal)
		span.End()
	}
}

func TestTraceparent_RoundTrip(t *testing.T) {
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	sc, ok := telemetry.ParseTraceparent(tp)
	if !ok || !sc.IsSampled() || !sc.IsRemote() {
		t.Fatalf("ParseTraceparent(%q) = %v, %v", tp, sc, ok)
	}
	if got := telemetry.Traceparent(sc); got != tp {
		t.Fatalf("Traceparent = %q, want %q", got, tp)
	}
	for _, bad := range []string{"", "00-xyz", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-zz"} {
		if _, ok := telemetry.ParseTraceparent(bad); ok {
			t.Errorf("ParseTraceparent(%q) accepted", bad)
		}
	}
}

func TestConfig_Validate(t *testing.T) {
	for _, c := range []telemetry.Config{
		{Endpoint: "127.0.0.1:4317", Protocol: "udp", SampleRatio: -1},
		{Endpoint: "ftp://x:1", SampleRatio: -1},
		{Endpoint: "127.0.0.1:4317", SampleRatio: 2},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", c)
		}
	}
	t.Setenv("OTEL_TRACES_SAMPLER", "traceidratio")
	t.Setenv("OTEL_TRACES_SAMPLER_ARG", "lots")
	if err := (telemetry.Config{SampleRatio: -1}).Validate(); err == nil || !strings.Contains(err.Error(), "OTEL_TRACES_SAMPLER_ARG") {
		t.Errorf("a bad OTEL_TRACES_SAMPLER_ARG: %v", err)
	}
}

// TestTrace_ReadingPathIsOneConnectedTrace drives the bus wrappers as the
// platform does (edge span → validate/stamp → publish → consume → store
// write) and checks the trace the OTLP receiver got, over both protocols.
func TestTrace_ReadingPathIsOneConnectedTrace(t *testing.T) {
	for _, proto := range []string{telemetry.ProtocolGRPC, telemetry.ProtocolHTTP} {
		t.Run(proto, func(t *testing.T) {
			rcv := otlptest.Start(t)
			ep := rcv.HTTPURL
			if proto == telemetry.ProtocolGRPC {
				ep = rcv.GRPCAddr
			}
			p, err := telemetry.Setup(context.Background(), telemetry.Config{Endpoint: ep, Protocol: proto, SampleRatio: 1, ServiceName: "test-" + proto})
			if err != nil {
				t.Fatal(err)
			}
			w := &fakeWriter{}
			b := busembedded.New(5 * time.Second)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			tw := telemetry.Writer(w)
			go b.Subscribe(ctx, telemetry.Handler(func(ctx context.Context, recs []*busv1.Record) error {
				rs := make([]store.Reading, len(recs))
				return tw.Write(ctx, rs)
			}))
			for !b.Subscribed() {
				time.Sleep(time.Millisecond)
			}
			pub := telemetry.Publisher(b)
			ectx, edge := telemetry.Start(context.Background(), "edge", trace.SpanKindServer)
			recs := []*busv1.Record{{DeviceId: 1, SensorId: 2}, {DeviceId: 1, SensorId: 2, TimestampNs: 1}}
			telemetry.StampRecords(ectx, recs)
			if err := pub.Publish(ectx, recs); err != nil {
				t.Fatal(err)
			}
			edge.End()
			// An untraced publish adds no spans.
			if err := pub.Publish(context.Background(), []*busv1.Record{{DeviceId: 3}}); err != nil {
				t.Fatal(err)
			}
			if w.wrote != 3 {
				t.Fatalf("store saw %d readings, want 3", w.wrote)
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			if telemetry.Enabled() {
				t.Fatal("still enabled after Shutdown")
			}
			tid := edge.SpanContext().TraceID().String()
			spans, ok := rcv.WaitFor(10*time.Second, func(s []otlptest.Span) bool { return len(s) >= 4 })
			if !ok {
				t.Fatalf("received %d spans, want 4: %+v", len(spans), spans)
			}
			tr := rcv.Trace(tid)
			if len(tr) != 4 || len(spans) != 4 {
				t.Fatalf("trace has %d spans of %d received, want 4: %+v", len(tr), len(spans), spans)
			}
			sw := otlptest.Find(tr, "store.write")
			if len(sw) != 1 {
				t.Fatalf("store.write spans: %+v", tr)
			}
			path, connected := otlptest.Path(tr, sw[0])
			if want := "edge > bus.publish > pipeline.apply > store.write"; !connected || path != want {
				t.Fatalf("path %q (connected %v), want %q", path, connected, want)
			}
			for name, ev := range map[string]string{"bus.publish": "durable", "pipeline.apply": "applied", "store.write": "visible"} {
				s := otlptest.Find(tr, name)[0]
				if len(s.Events) != 1 || s.Events[0] != ev {
					t.Errorf("%s events %v, want [%s]", name, s.Events, ev)
				}
				if s.Service != "test-"+proto {
					t.Errorf("%s service %q", name, s.Service)
				}
			}
			if got := otlptest.Find(tr, "bus.publish")[0].Attrs["messaging.batch.message_count"]; got != "2" {
				t.Errorf("bus.publish message_count = %q, want 2", got)
			}
		})
	}
}

func TestLogHandler_AddsRequestAndTraceIDs(t *testing.T) {
	rcv := otlptest.Start(t)
	p, err := telemetry.Setup(context.Background(), telemetry.Config{Endpoint: rcv.GRPCAddr, Protocol: telemetry.ProtocolGRPC, SampleRatio: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	var buf bytes.Buffer
	log := slog.New(telemetry.LogHandler(slog.NewJSONHandler(&buf, nil))).With("component", "x")
	var reqID, traceID string
	h := telemetry.HTTP("http", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reqID = telemetry.RequestID(r.Context())
		traceID = trace.SpanContextFromContext(r.Context()).TraceID().String()
		log.InfoContext(r.Context(), "handled")
		log.Info("no context")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/api/x", nil))
	if rec.Header().Get("X-Request-Id") != reqID || len(reqID) != 16 {
		t.Fatalf("X-Request-Id %q, context %q", rec.Header().Get("X-Request-Id"), reqID)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var first, second map[string]any
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	if first["request_id"] != reqID || first["trace_id"] != traceID || first["span_id"] == nil || first["component"] != "x" {
		t.Fatalf("log line with context: %s", lines[0])
	}
	if _, ok := second["request_id"]; ok {
		t.Fatalf("log line without context got ids: %s", lines[1])
	}
	// A caller's plausible request id is kept; a hostile one replaced.
	for in, keep := range map[string]bool{"abc-123.X_y": true, "bad id\n": false, strings.Repeat("a", 65): false} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("X-Request-Id", in)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if got := rec.Header().Get("X-Request-Id"); (got == in) != keep {
			t.Errorf("X-Request-Id %q answered %q", in, got)
		}
	}
}

func TestSamplingHandler_BoundsRepeatedWarnings(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(telemetry.SamplingHandler(slog.NewJSONHandler(&buf, nil), telemetry.SampleConfig{First: 3, Interval: 200 * time.Millisecond}))
	for range 50 {
		log.Warn("same warning", "err", errors.New("x"))
		log.Info("info is never sampled")
	}
	log.Warn("another warning")
	out := buf.String()
	if n := strings.Count(out, "same warning"); n != 3 {
		t.Fatalf("%d of 50 repeated warnings logged, want 3", n)
	}
	if n := strings.Count(out, "info is never sampled"); n != 50 {
		t.Fatalf("%d info lines, want 50", n)
	}
	if !strings.Contains(out, "another warning") {
		t.Fatal("a different message was suppressed")
	}
	time.Sleep(250 * time.Millisecond)
	buf.Reset()
	log.Warn("same warning")
	if !strings.Contains(buf.String(), `"suppressed":47`) {
		t.Fatalf("next window's first line does not count the suppressed ones: %s", buf.String())
	}
}

// TestUnsampled_ChildrenCostNothing: with tracing on but a request not
// sampled, the spans inside it are not even started.
func TestUnsampled_ChildrenCostNothing(t *testing.T) {
	rcv := otlptest.Start(t)
	p, err := telemetry.Setup(context.Background(), telemetry.Config{Endpoint: rcv.GRPCAddr, Protocol: telemetry.ProtocolGRPC, SampleRatio: 0})
	if err != nil {
		t.Fatal(err)
	}
	var allocs float64
	h := telemetry.HTTP("http", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !trace.SpanContextFromContext(r.Context()).IsValid() {
			t.Error("no span context in an unsampled request")
		}
		allocs = testing.AllocsPerRun(100, func() {
			_, span := telemetry.Start(r.Context(), "child", trace.SpanKindInternal)
			span.End()
		})
	}))
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil))
	if allocs != 0 {
		t.Errorf("child span of an unsampled request: %v allocations, want 0", allocs)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := rcv.Count(); n != 0 {
		t.Errorf("%d spans exported at sample ratio 0", n)
	}
}

// BenchmarkHTTP_Unsampled is the per-request cost of the HTTP middleware
// and two child spans with tracing on at sample ratio 0 (the 99 % of
// requests a 1 % ratio does not record); compare BenchmarkHTTP_Off.
func BenchmarkHTTP_Unsampled(b *testing.B) {
	rcv := otlptest.Start(b)
	p, err := telemetry.Setup(context.Background(), telemetry.Config{Endpoint: rcv.GRPCAddr, Protocol: telemetry.ProtocolGRPC, SampleRatio: 0})
	if err != nil {
		b.Fatal(err)
	}
	defer p.Shutdown(context.Background())
	benchHTTP(b)
}

// BenchmarkHTTP_Off is BenchmarkHTTP_Unsampled with tracing off (request
// ids only).
func BenchmarkHTTP_Off(b *testing.B) { benchHTTP(b) }

func benchHTTP(b *testing.B) {
	h := telemetry.HTTP("http", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 2 {
			_, span := telemetry.Start(r.Context(), "child", trace.SpanKindInternal)
			span.End()
		}
	}))
	req := httptest.NewRequest("POST", "/", nil)
	w := httptest.NewRecorder()
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
