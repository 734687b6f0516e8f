package command

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
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
	// sendTimeout bounds each write to a stream (sendTimeout).
	sendTimeout time.Duration
}

var _ commandv1connect.DeviceServiceHandler = (*DeviceHandler)(nil)

// NewDeviceHandler returns the DeviceService handler; serve it with
// Handler.
func NewDeviceHandler(svc *Service, readings Readings) *DeviceHandler {
	return &DeviceHandler{svc: svc, readings: readings, sendTimeout: sendTimeout}
}

// sendTimeout bounds writing one message to a device's stream: a device
// that keeps its stream open without reading it (HTTP/2 flow control holds
// the write) has the stream reset after that long, like a WebSocket device
// that does not read.
const sendTimeout = 10 * time.Second

// writerKey carries the stream's http.ResponseController (Handler).
type writerKey struct{}

// Handler returns DeviceService's path and HTTP handler with opts. It gives
// Connect its stream's write deadline (sendTimeout); served without it, a
// write to a device that does not read waits as long as the stream stays
// open, and with it that device's command dispatcher.
func (h *DeviceHandler) Handler(opts ...connect.HandlerOption) (string, http.Handler) {
	path, next := commandv1connect.NewDeviceServiceHandler(h, opts...)
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), writerKey{}, http.NewResponseController(w))))
	})
}

// Connect implements DeviceService.Connect: commands are written by the
// device's dispatcher as they come (each marked sent first; no goroutine
// waits for them), messages from the device are handled in order.
func (h *DeviceHandler) Connect(ctx context.Context, stream *connect.BidiStream[commandv1.ConnectRequest, commandv1.ConnectResponse]) error {
	p, err := authn.Require(ctx, authn.KindDevice)
	if err != nil {
		return err
	}
	rc, _ := ctx.Value(writerKey{}).(*http.ResponseController)
	if rc != nil && rc.SetWriteDeadline(time.Time{}) != nil {
		rc = nil // not supported by this connection: writes are unbounded
	}
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	send := func(m *commandv1.ConnectResponse) error {
		mu.Lock()
		defer mu.Unlock()
		if rc != nil {
			_ = rc.SetWriteDeadline(time.Now().Add(h.sendTimeout))
			defer rc.SetWriteDeadline(time.Time{})
		}
		return stream.Send(m)
	}
	sess := h.svc.AttachFunc(p.ID, EdgeGRPC, true, func(sess *Session, c registry.Command) bool {
		// A rotated or revoked key receives no command.
		if _, err := authn.Reauthenticate(ctx); err != nil {
			cancel()
			return false
		}
		if !h.svc.Sent(ctx, sess, c) {
			return true
		}
		if err := send(&commandv1.ConnectResponse{Message: &commandv1.ConnectResponse_Command{Command: commandPB(c)}}); err != nil {
			cancel()
			return false // sent again on the next connection
		}
		return true
	})
	// Close waits for a command being written: nothing is sent once
	// Connect has returned.
	defer func() {
		cancel()
		sess.Close()
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
