package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"

	"connectrpc.com/connect"
	"go.opentelemetry.io/otel/trace"

	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// Handler implements IngestService over the ingest path. The caller must be
// a device (authn.NewInterceptor puts it in the context).
type Handler struct {
	svc *Service
	// maxInFlight bounds the batches a stream reads ahead of its acks.
	maxInFlight int
}

var _ ingestv1connect.IngestServiceHandler = (*Handler)(nil)

// NewHandler returns the IngestService handler; maxInFlight (default 8)
// bounds how many batches a stream reads ahead before they are acked.
func NewHandler(svc *Service, maxInFlight int) *Handler {
	if maxInFlight <= 0 {
		maxInFlight = 8
	}
	return &Handler{svc: svc, maxInFlight: maxInFlight}
}

// Ingest stores one batch and answers once it is durable.
func (h *Handler) Ingest(ctx context.Context, req *ingestv1.IngestRequest) (*ingestv1.IngestResponse, error) {
	p, err := authn.Require(ctx, authn.KindDevice)
	if err != nil {
		return nil, err
	}
	rs, err := h.svc.DecodeProto(ProtocolGRPC, req.GetReadings())
	if err == nil {
		var n int
		if n, err = h.svc.Ingest(ctx, p.ID, ProtocolGRPC, rs); err == nil {
			return &ingestv1.IngestResponse{Accepted: int32(n)}, nil
		}
	}
	return nil, ConnectError(err)
}

// ConnectError maps an ingest error to a Connect error carrying the item
// errors as details.
func ConnectError(err error) error {
	var be *BatchError
	switch {
	case errors.As(err, &be):
		code := connect.CodeInvalidArgument
		if be.Class == ClassTooLarge || be.Class == ClassRateLimited {
			code = connect.CodeResourceExhausted
		}
		ce := connect.NewError(code, err)
		for _, it := range ItemErrorsProto(be.Items) {
			if d, derr := connect.NewErrorDetail(it); derr == nil {
				ce.AddDetail(d)
			}
		}
		return ce
	case errors.Is(err, bus.ErrUnavailable):
		return connect.NewError(connect.CodeUnavailable, errUnavailable)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, context.Canceled)
	default:
		return connect.NewError(connect.CodeInternal, errInternal)
	}
}

// Messages for server-side failures: the causes stay in the logs.
var (
	errUnavailable = errors.New("the platform cannot take readings right now; nothing was stored, retry later")
	errInternal    = errors.New("internal error")
)

// ItemErrorsProto converts item errors to their protobuf form.
func ItemErrorsProto(items []ItemError) []*ingestv1.ItemError {
	out := make([]*ingestv1.ItemError, len(items))
	for i, it := range items {
		out[i] = &ingestv1.ItemError{Index: int32(it.Index), Code: it.Code, Message: it.Message}
	}
	return out
}

// ItemErrorsOf returns the item errors of err: a BatchError's items, or one
// whole-batch error with code "unavailable" or "internal".
func ItemErrorsOf(err error) []ItemError {
	var be *BatchError
	if errors.As(err, &be) {
		return be.Items
	}
	if errors.Is(err, bus.ErrUnavailable) {
		return []ItemError{{Index: -1, Code: CodeUnavailable, Message: errUnavailable.Error()}}
	}
	return []ItemError{{Index: -1, Code: "internal", Message: errInternal.Error()}}
}

// IngestStream reads batches ahead (at most maxInFlight unacknowledged),
// publishes them in order and acks each sequence once durable. A refused
// batch is answered with its errors and the stream goes on; a bus failure
// is answered with an "unavailable" error frame for that batch.
func (h *Handler) IngestStream(ctx context.Context, stream *connect.BidiStream[ingestv1.IngestStreamRequest, ingestv1.IngestStreamResponse]) error {
	p, err := authn.Require(ctx, authn.KindDevice)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	queue := make(chan *ingestv1.IngestStreamRequest, h.maxInFlight)
	recvErr := make(chan error, 1)
	go func() {
		defer close(queue)
		for {
			req, err := stream.Receive()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case queue <- req:
			case <-ctx.Done():
				recvErr <- ctx.Err()
				return
			}
		}
	}()
	for req := range queue {
		// Each batch is a trace of its own, linked to the stream's.
		mctx, span := telemetry.StartLinked(ctx, "IngestStream batch", trace.SpanKindServer)
		resp, err := h.streamBatch(mctx, p.ID, req)
		telemetry.Fail(span, err)
		span.End()
		if err != nil {
			return err
		}
		if err := stream.Send(resp); err != nil {
			return fmt.Errorf("send ack %d: %w", req.GetSequence(), err)
		}
	}
	if err := <-recvErr; err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// streamBatch ingests one IngestStream batch; an error ends the stream.
func (h *Handler) streamBatch(ctx context.Context, device int64, req *ingestv1.IngestStreamRequest) (*ingestv1.IngestStreamResponse, error) {
	// The stream may outlive the key: a rotation or deletion ends it.
	if _, err := authn.Reauthenticate(ctx); err != nil {
		return nil, err
	}
	resp := &ingestv1.IngestStreamResponse{Sequence: req.GetSequence()}
	rs, err := h.svc.DecodeProto(ProtocolGRPC, req.GetReadings())
	var n int
	if err == nil {
		n, err = h.svc.Ingest(ctx, device, ProtocolGRPC, rs)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, connect.NewError(connect.CodeCanceled, ctx.Err())
		}
		resp.Errors = ItemErrorsProto(ItemErrorsOf(err))
	} else {
		resp.Accepted = int32(n)
	}
	return resp, nil
}
