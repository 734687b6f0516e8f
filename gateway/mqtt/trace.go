package mqtt

import (
	"context"

	"github.com/mochi-mqtt/server/v2/packets"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// startPublish starts the trace of one PUBLISH (a root span: the session
// outlives any one reading); its authentication re-check and validation are
// children, and the records carry it through the bus.
func startPublish(s *session, pk packets.Packet) (context.Context, trace.Span) {
	ctx, span := telemetry.Start(s.ctx, "mqtt publish", trace.SpanKindServer)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("iot.device.id", s.device), attribute.Int("mqtt.qos", int(pk.FixedHeader.Qos)),
			attribute.Int("messaging.message.body.size", len(pk.Payload)))
	}
	return ctx, span
}

// endSpan ends a publish's span (nil for jobs without one), failed with err
// when set; ending twice is harmless.
func endSpan(span pubSpan, err error) {
	if span == nil {
		return
	}
	telemetry.Fail(span, err)
	span.End()
}

// pubSpan is the trace span of one PUBLISH.
type pubSpan = trace.Span
