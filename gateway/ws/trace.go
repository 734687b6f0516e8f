package ws

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// startMessage starts the trace of one data message: a root span linked to
// the connection's (the upgrade request's) span, so every message is a
// trace of its own; its authentication re-check and validation are children
// and the records carry it through the bus.
func startMessage(ctx context.Context, size int) (context.Context, trace.Span) {
	ctx, span := telemetry.StartLinked(ctx, "ws message", trace.SpanKindServer)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("messaging.message.body.size", size))
	}
	return ctx, span
}

// endMessage ends a message's span with the status its ack reports.
func endMessage(span trace.Span, ack Ack) {
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("iot.ack.status", ack.Status), attribute.Int("iot.ack.accepted", ack.Accepted))
		if ack.Status >= 500 {
			span.SetStatus(codes.Error, ack.Message)
		}
	}
	span.End()
}
