package telemetry

import (
	"context"
	"encoding/hex"
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Traceparent formats sc as a W3C traceparent value
// ("00-<trace id>-<span id>-<flags>"); empty for an invalid context.
func Traceparent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// ParseTraceparent reads a W3C traceparent value into a remote span
// context; ok is false when s is not one.
func ParseTraceparent(s string) (sc trace.SpanContext, ok bool) {
	if len(s) != 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || s[:2] == "ff" {
		return trace.SpanContext{}, false
	}
	tid, err := trace.TraceIDFromHex(s[3:35])
	if err != nil {
		return trace.SpanContext{}, false
	}
	sid, err := trace.SpanIDFromHex(s[36:52])
	if err != nil {
		return trace.SpanContext{}, false
	}
	flags, err := strconv.ParseUint(s[53:55], 16, 8)
	if err != nil {
		return trace.SpanContext{}, false
	}
	sc = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags), Remote: true})
	return sc, sc.IsValid()
}

// StampRecords gives every record of recs without a trace context the
// context of the span in ctx, when that span is sampled: the records then
// carry the reading's trace through the bus. Unsampled readings stay
// untouched (no bytes added to the bus).
func StampRecords(ctx context.Context, recs []*busv1.Record) {
	if state.Load() == nil {
		return
	}
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsSampled() {
		return
	}
	tp := Traceparent(sc)
	for _, r := range recs {
		if r.GetTraceparent() == "" {
			r.Traceparent = tp
		}
	}
}

// traceGroup is the records of one batch that share a trace context, and
// the span started for them.
type traceGroup struct {
	parent string
	n      int
	span   trace.Span
}

// groups lists the distinct trace contexts among recs (usually none or one).
func groups(recs []*busv1.Record) []traceGroup {
	var gs []traceGroup
next:
	for _, r := range recs {
		tp := r.GetTraceparent()
		if tp == "" {
			continue
		}
		for i := range gs {
			if gs[i].parent == tp {
				gs[i].n++
				continue next
			}
		}
		gs = append(gs, traceGroup{parent: tp, n: 1})
	}
	return gs
}

// startGroups starts one span named name per trace context of recs, each a
// child of its records' context.
func startGroups(ctx context.Context, t trace.Tracer, name string, kind trace.SpanKind, recs []*busv1.Record) []traceGroup {
	gs := groups(recs)
	for i := range gs {
		sc, ok := ParseTraceparent(gs[i].parent)
		if !ok {
			continue
		}
		_, gs[i].span = t.Start(trace.ContextWithRemoteSpanContext(ctx, sc), name, trace.WithSpanKind(kind),
			trace.WithAttributes(attribute.Int("messaging.batch.message_count", gs[i].n), attribute.Int("iot.batch.records", len(recs))))
	}
	return gs
}

func endGroups(gs []traceGroup, err error, event string) {
	for _, g := range gs {
		if g.span == nil {
			continue
		}
		if err != nil {
			Fail(g.span, err)
		} else {
			g.span.AddEvent(event)
		}
		g.span.End()
	}
}

// Publisher wraps p so every publish of traced records gets a "bus.publish"
// span (ended with a "durable" event once p acknowledged) in each record's
// trace, and the records carry that span's context on. With tracing off it
// returns p itself.
func Publisher(p bus.Publisher) bus.Publisher {
	if !Enabled() {
		return p
	}
	return tracedPublisher{p}
}

type tracedPublisher struct{ next bus.Publisher }

func (p tracedPublisher) Publish(ctx context.Context, recs []*busv1.Record) error {
	t := tracer()
	if t == nil {
		return p.next.Publish(ctx, recs)
	}
	StampRecords(ctx, recs)
	gs := startGroups(ctx, t, "bus.publish", trace.SpanKindProducer, recs)
	for _, g := range gs {
		if g.span == nil {
			continue
		}
		tp := Traceparent(g.span.SpanContext())
		for _, r := range recs {
			if r.GetTraceparent() == g.parent {
				r.Traceparent = tp
			}
		}
	}
	err := p.next.Publish(ctx, recs)
	endGroups(gs, err, "durable")
	return err
}

// batchKey carries the consume spans of the batch being applied.
type batchKey struct{}

// Handler wraps h so each trace among a consumed batch gets a
// "pipeline.apply" span (child of the publishing span, ended with an
// "applied" event when h succeeded); the store writes h makes inside become
// children of those spans (Writer). With tracing off it returns h itself.
func Handler(h bus.Handler) bus.Handler {
	if !Enabled() {
		return h
	}
	return func(ctx context.Context, recs []*busv1.Record) error {
		t := tracer()
		if t == nil {
			return h(ctx, recs)
		}
		gs := startGroups(ctx, t, "pipeline.apply", trace.SpanKindConsumer, recs)
		if len(gs) > 0 {
			ctx = context.WithValue(ctx, batchKey{}, gs)
		}
		err := h(ctx, recs)
		endGroups(gs, err, "applied")
		return err
	}
}

// Writer wraps w so a Write inside a traced batch (Handler) gets a
// "store.write" span in every trace of the batch, ended with a "visible"
// event once the store accepted the readings. With tracing off it returns
// w itself.
func Writer(w store.Writer) store.Writer {
	if !Enabled() {
		return w
	}
	return tracedWriter{w}
}

type tracedWriter struct{ store.Writer }

func (w tracedWriter) Write(ctx context.Context, rs []store.Reading) error {
	gs, _ := ctx.Value(batchKey{}).([]traceGroup)
	t := tracer()
	if len(gs) == 0 || t == nil {
		return w.Writer.Write(ctx, rs)
	}
	spans := make([]traceGroup, 0, len(gs))
	for _, g := range gs {
		if g.span == nil {
			continue
		}
		_, s := t.Start(trace.ContextWithSpan(ctx, g.span), "store.write", trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attribute.Int("iot.store.readings", len(rs))))
		spans = append(spans, traceGroup{span: s})
	}
	err := w.Writer.Write(ctx, rs)
	endGroups(spans, err, "visible")
	return err
}
