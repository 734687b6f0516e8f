// Package otlptest is an OTLP trace receiver for tests, built on the
// official OTLP protobuf packages: it accepts ExportTraceServiceRequest over
// gRPC (like a collector's :4317) and over HTTP/protobuf (:4318,
// POST /v1/traces) on 127.0.0.1 and keeps every span it received.
package otlptest

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	Service string
	// Resource holds the resource attributes of the process that sent it.
	Resource map[string]string
	TraceID  string
	SpanID   string
	ParentID string
	Name     string
	Kind     tracepb.Span_SpanKind
	Attrs    map[string]string
	Events   []string
	Links    []string // linked trace ids
	Error    bool
	Start    time.Time
}

// Receiver collects spans.
type Receiver struct {
	coltracepb.UnimplementedTraceServiceServer
	// GRPCAddr and HTTPURL are where exporters send to.
	GRPCAddr string
	HTTPURL  string

	mu    sync.Mutex
	spans []Span
}

// Start starts a receiver on 127.0.0.1 for the test's lifetime.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r, stop, err := Listen("127.0.0.1:0", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return r
}

// Listen starts a receiver with OTLP/gRPC on grpcAddr and OTLP/HTTP on
// httpAddr (benchmarks use it as a sink); stop closes both.
func Listen(grpcAddr, httpAddr string) (r *Receiver, stop func(), err error) {
	r = &Receiver{}
	gl, err := net.Listen("tcp", grpcAddr)
	if err != nil {
		return nil, nil, err
	}
	hl, err := net.Listen("tcp", httpAddr)
	if err != nil {
		gl.Close()
		return nil, nil, err
	}
	gs := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(gs, r)
	go gs.Serve(gl)
	hs := &http.Server{Handler: http.HandlerFunc(r.serveHTTP), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(hl)
	r.GRPCAddr = gl.Addr().String()
	r.HTTPURL = "http://" + hl.Addr().String()
	return r, func() { gs.Stop(); hs.Close() }, nil
}

// Count returns how many spans were received.
func (r *Receiver) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.spans)
}

// Export implements the OTLP gRPC trace service.
func (r *Receiver) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	r.add(req)
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, hr *http.Request) {
	if hr.Method != http.MethodPost || hr.URL.Path != "/v1/traces" {
		http.NotFound(w, hr)
		return
	}
	b, err := io.ReadAll(io.LimitReader(hr.Body, 64<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&req)
	out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func str(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return fmt.Sprint(x.IntValue)
	case *commonpb.AnyValue_BoolValue:
		return fmt.Sprint(x.BoolValue)
	case *commonpb.AnyValue_DoubleValue:
		return fmt.Sprint(x.DoubleValue)
	}
	return v.String()
}

func (r *Receiver) add(req *coltracepb.ExportTraceServiceRequest) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.GetKey()] = str(kv.GetValue())
		}
		service := res["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				sp := Span{Service: service, Resource: res, TraceID: hex.EncodeToString(s.GetTraceId()), SpanID: hex.EncodeToString(s.GetSpanId()),
					ParentID: hex.EncodeToString(s.GetParentSpanId()), Name: s.GetName(), Kind: s.GetKind(), Attrs: map[string]string{},
					Error: s.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR, Start: time.Unix(0, int64(s.GetStartTimeUnixNano()))}
				for _, kv := range s.GetAttributes() {
					sp.Attrs[kv.GetKey()] = str(kv.GetValue())
				}
				for _, e := range s.GetEvents() {
					sp.Events = append(sp.Events, e.GetName())
				}
				for _, l := range s.GetLinks() {
					sp.Links = append(sp.Links, hex.EncodeToString(l.GetTraceId()))
				}
				r.spans = append(r.spans, sp)
			}
		}
	}
}

// Spans returns every span received so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Trace returns the spans of one trace.
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

// WaitFor polls until match finds what it wants in the received spans (it
// returns true) or timeout passes; it returns the last spans seen.
func (r *Receiver) WaitFor(timeout time.Duration, match func([]Span) bool) ([]Span, bool) {
	deadline := time.Now().Add(timeout)
	for {
		spans := r.Spans()
		if match(spans) {
			return spans, true
		}
		if time.Now().After(deadline) {
			return spans, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Path returns the chain of span names from the root of s's trace down to
// s ("POST http > bus.publish > pipeline.apply > store.write"), and whether
// every parent was received (the trace is connected).
func Path(trace []Span, s Span) (string, bool) {
	byID := map[string]Span{}
	for _, x := range trace {
		byID[x.SpanID] = x
	}
	names := []string{s.Name}
	cur := s
	for cur.ParentID != "" && cur.ParentID != strings.Repeat("0", 16) {
		p, ok := byID[cur.ParentID]
		if !ok {
			return strings.Join(names, " < "), false
		}
		names = append(names, p.Name)
		cur = p
	}
	slices.Reverse(names)
	return strings.Join(names, " > "), true
}

// Find returns the spans of trace named name.
func Find(trace []Span, name string) []Span {
	var out []Span
	for _, s := range trace {
		if s.Name == name {
			out = append(out, s)
		}
	}
	return out
}
