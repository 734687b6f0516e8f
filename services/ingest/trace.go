package ingest

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// Validate is the validate step every edge goes through: it checks rs for
// device and builds the bus records (all or nothing); a refused batch is
// counted in iot_ingest_refused_batches_total under protocol p. When the
// request is traced, validation is an "ingest.validate" span and the
// records carry the request's trace context through the bus.
func (s *Service) Validate(ctx context.Context, device int64, p Protocol, rs []Reading) ([]*busv1.Record, error) {
	vctx, span := telemetry.Start(ctx, "ingest.validate", trace.SpanKindInternal)
	recs, err := s.validate(vctx, device, p, rs)
	if span.IsRecording() {
		span.SetAttributes(attribute.Int64("iot.device.id", device), attribute.String("iot.protocol", string(p)), attribute.Int("iot.readings", len(rs)))
		telemetry.Fail(span, err)
	}
	span.End()
	if err != nil {
		s.m.refused(p, err)
	} else {
		telemetry.StampRecords(ctx, recs)
	}
	return recs, err
}
