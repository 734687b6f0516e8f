package command

import (
	"context"
	"errors"
	"io"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
)

// Readings ingests one batch of a device's stream and answers it like
// IngestStream does (the ingest path, adapted in the composition root).
type Readings interface {
	IngestBatch(ctx context.Context, device int64, req *ingestv1.IngestStreamRequest) *ingestv1.IngestStreamResponse
}

// DeviceHandler implements DeviceService over the service and the ingest
// path.
type DeviceHandler struct {
	svc      *Service
	readings Readings
}

var _ commandv1connect.DeviceServiceHandler = (*DeviceHandler)(nil)

// NewDeviceHandler returns the DeviceService handler.
func NewDeviceHandler(svc *Service, readings Readings) *DeviceHandler {
	return &DeviceHandler{svc: svc, readings: readings}
}

// Connect implements DeviceService.Connect: commands are written as they
// come (each marked sent first), messages from the device are handled in
// order.
func (h *DeviceHandler) Connect(ctx context.Context, stream *connect.BidiStream[commandv1.ConnectRequest, commandv1.ConnectResponse]) error {
	p, err := authn.Require(ctx, authn.KindDevice)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sess := h.svc.Attach(p.ID, EdgeGRPC, true)
	defer sess.Close()
	var mu sync.Mutex
	send := func(m *commandv1.ConnectResponse) error {
		mu.Lock()
		defer mu.Unlock()
		return stream.Send(m)
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case c := <-sess.Commands():
				// A rotated or revoked key receives no command.
				if _, err := authn.Reauthenticate(ctx); err != nil {
					cancel()
					return
				}
				if !h.svc.Sent(ctx, sess, c) {
					continue
				}
				if err := send(&commandv1.ConnectResponse{Message: &commandv1.ConnectResponse_Command{Command: commandPB(c)}}); err != nil {
					cancel()
					return
				}
			}
		}
	}()
	for {
		req, err := stream.Receive()
		if err != nil {
			if errors.Is(err, io.EOF) || ctx.Err() != nil {
				return nil
			}
			return err
		}
		// The stream may outlive the key: a rotation or deletion ends it.
		if _, err := authn.Reauthenticate(ctx); err != nil {
			return err
		}
		h.svc.Seen(p.ID)
		var out *commandv1.ConnectResponse
		switch m := req.GetMessage().(type) {
		case *commandv1.ConnectRequest_Readings:
			out = &commandv1.ConnectResponse{Message: &commandv1.ConnectResponse_ReadingsAck{ReadingsAck: h.readings.IngestBatch(ctx, p.ID, m.Readings)}}
		case *commandv1.ConnectRequest_Ack:
			err = h.svc.Ack(ctx, p.ID, m.Ack.GetCommandId(), "acknowledged on grpc")
		case *commandv1.ConnectRequest_Response:
			var result []byte
			if m.Response.GetResult() != nil {
				result, _ = protojson.Marshal(m.Response.GetResult())
			}
			err = h.svc.Respond(ctx, p.ID, m.Response.GetCommandId(), m.Response.GetSuccess(), result, m.Response.GetMessage())
		case *commandv1.ConnectRequest_Reported:
			doc, _ := protojson.Marshal(m.Reported)
			err = h.svc.Report(ctx, p.ID, doc)
		default:
			err = errors.New("empty message")
		}
		if err != nil {
			out = &commandv1.ConnectResponse{Message: &commandv1.ConnectResponse_Error{Error: h.svc.itemError(ctx, p.ID, err)}}
		}
		if out != nil {
			if err := send(out); err != nil {
				return err
			}
		}
	}
}

// itemError words an error of a device call for the device.
func (s *Service) itemError(ctx context.Context, device int64, err error) *ingestv1.ItemError {
	if IsDeviceError(err) || err.Error() == "empty message" {
		return &ingestv1.ItemError{Index: -1, Code: "invalid_argument", Message: err.Error()}
	}
	s.log.WarnContext(ctx, "device command call failed", "device_id", device, "err", err)
	return &ingestv1.ItemError{Index: -1, Code: "unavailable", Message: "the platform cannot record this right now; send it again later"}
}
