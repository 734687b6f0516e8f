package e2e

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/telemetry/otlptest"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// edgeRoots are the root spans of the seven readings pushAllEdges sends:
// HTTP JSON and protobuf, two WebSocket messages, two MQTT publishes, one
// IngestStream batch.
var edgeRoots = []string{"IngestStream batch", "POST http", "POST http", "mqtt publish", "mqtt publish", "ws message", "ws message"}

// checkReadingTraces waits until every reading pushed by pushAllEdges has a
// trace ending at a store write, and checks each trace is connected: the
// edge's span is the root, authentication and validation are its children,
// and edge > bus.publish > pipeline.apply > store.write with the durable,
// applied and visible events. It returns the traces' store.write spans by
// root name.
func checkReadingTraces(t *testing.T, rcv *otlptest.Receiver) map[string][]otlptest.Span {
	t.Helper()
	roots := func(spans []otlptest.Span) []string {
		var names []string
		for _, sw := range otlptest.Find(spans, "store.write") {
			var tr []otlptest.Span
			for _, s := range spans {
				if s.TraceID == sw.TraceID {
					tr = append(tr, s)
				}
			}
			if path, ok := otlptest.Path(tr, sw); ok {
				names = append(names, strings.SplitN(path, " > ", 2)[0])
			}
		}
		sort.Strings(names)
		return names
	}
	spans, ok := rcv.WaitFor(30*time.Second, func(s []otlptest.Span) bool { return slices.Equal(roots(s), edgeRoots) })
	if !ok {
		var b strings.Builder
		for _, s := range spans {
			fmt.Fprintf(&b, "%s %s parent=%s %s\n", s.TraceID, s.SpanID, s.ParentID, s.Name)
		}
		t.Fatalf("traces ending at a store write start at %v, want %v\nspans:\n%s", roots(spans), edgeRoots, b.String())
	}
	out := map[string][]otlptest.Span{}
	for _, sw := range otlptest.Find(spans, "store.write") {
		tr := rcv.Trace(sw.TraceID)
		path, _ := otlptest.Path(tr, sw)
		root := strings.SplitN(path, " > ", 2)[0]
		if want := root + " > bus.publish > pipeline.apply > store.write"; path != want {
			t.Errorf("trace %s: %q, want %q", sw.TraceID, path, want)
		}
		for _, child := range []string{"authn.authenticate", "ingest.validate"} {
			found := otlptest.Find(tr, child)
			if len(found) == 0 {
				t.Errorf("%s trace %s has no %s span", root, sw.TraceID, child)
				continue
			}
			if p, _ := otlptest.Path(tr, found[0]); p != root+" > "+child {
				t.Errorf("%s trace: %s at %q", root, child, p)
			}
		}
		for name, ev := range map[string]string{"bus.publish": "durable", "pipeline.apply": "applied", "store.write": "visible"} {
			if s := otlptest.Find(tr, name); len(s) != 1 || !slices.Contains(s[0].Events, ev) {
				t.Errorf("%s trace: %s spans %+v, want one with event %q", root, name, s, ev)
			}
		}
		out[root] = append(out[root], sw)
	}
	return out
}

// TestTracing_EveryEdgeOneConnectedTraceToStoreWrite: with an OTLP endpoint
// configured (gRPC), a reading pushed over each edge of one process (the
// write-ahead-log bus) is one connected trace from the edge to the store
// write, exported to a real OTLP receiver.
func TestTracing_EveryEdgeOneConnectedTraceToStoreWrite(t *testing.T) {
	rcv := otlptest.Start(t)
	p := Start(t, Options{Args: []string{"--otlp-endpoint", "http://" + rcv.GRPCAddr, "--otlp-protocol", "grpc", "--trace-sample-ratio", "1"}})
	d := p.NewDevice(p.AdminToken(), "traced", "double")
	pushAllEdges(t, p, d)
	checkReadingTraces(t, rcv)
	// The query path: a REST read is a span named after its RPC, with the
	// store read as its child.
	if rs := readingsREST(t, p, p.AdminToken(), d.SensorID, ""); len(rs) != 7 {
		t.Fatalf("read back %d readings, want 7", len(rs))
	}
	spans, ok := rcv.WaitFor(10*time.Second, func(s []otlptest.Span) bool { return len(otlptest.Find(s, "store.list")) > 0 })
	if !ok {
		t.Fatal("no store.list span for the REST read")
	}
	sl := otlptest.Find(spans, "store.list")[0]
	if path, ok := otlptest.Path(rcv.Trace(sl.TraceID), sl); !ok || path != "/iot.query.v1.QueryService/ListReadings > store.list" {
		t.Errorf("query trace %q (connected %v)", path, ok)
	}
	// RPCs are traced too (connect's interceptor, REST by the middleware).
	if _, ok := rcv.WaitFor(10*time.Second, func(s []otlptest.Span) bool {
		return len(otlptest.Find(s, "iot.ingest.v1.IngestService/IngestStream")) > 0 && len(otlptest.Find(s, "/iot.core.v1.CoreService/CreateDevice")) > 0
	}); !ok {
		names := map[string]bool{}
		for _, s := range rcv.Spans() {
			names[s.Name] = true
		}
		t.Fatalf("no RPC spans for IngestStream and the REST CreateDevice; span names: %v", names)
	}
}

// TestTracing_AcrossIngestAndPipelineProcesses: split roles over real Kafka
// (the trace context rides in the record's traceparent header) and
// OpenSearch: the edge half of each trace comes from the ingest process,
// the pipeline half from the pipeline process, and they join into one.
func TestTracing_AcrossIngestAndPipelineProcesses(t *testing.T) {
	brokers, osURL := testenv.KafkaBrokers(t), testenv.OpenSearchURL(t)
	rcv := otlptest.Start(t)
	n := randHex(4)
	keys := t.TempDir()
	common := []string{"--kafka-brokers", brokers, "--kafka-topic", "e2e.trace." + n, "--kafka-group", "e2e-trace-" + n,
		"--opensearch-url", osURL, "--opensearch-prefix", osPrefix(t, "e2e-trace-"+n), "--postgres-dsn", freshPostgres(t), "--keys-dir", keys,
		"--otlp-endpoint", rcv.HTTPURL, "--trace-sample-ratio", "1"}
	front := Start(t, Options{Args: append([]string{"--roles", "core,ingest,query"}, common...)})
	Start(t, Options{Args: append([]string{"--roles", "pipeline"}, common...)})
	d := front.NewDevice(front.AdminToken(), "traced-split", "double")
	pushAllEdges(t, front, d)
	for root, sws := range checkReadingTraces(t, rcv) {
		for _, sw := range sws {
			tr := rcv.Trace(sw.TraceID)
			edge := otlptest.Find(tr, root)[0]
			if edge.Resource["iot.roles"] != "core,ingest,query" || sw.Resource["iot.roles"] != "pipeline" {
				t.Errorf("%s trace: edge from roles %q, store write from roles %q; want the two processes", root, edge.Resource["iot.roles"], sw.Resource["iot.roles"])
			}
		}
	}
}
