package command

import (
	"errors"
	"net/http"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/internal/apierror"
)

// WatchStatesREST serves WatchDeviceStates over REST
// (GET /api/device-states/watch?device_ids=1&device_ids=2) as
// newline-delimited JSON, like grpc-gateway's server streams: one
// {"result": {...}} line per state, flushed at once, and an
// {"error": {"code", "message"}} line if the stream fails after it started.
// An error before the first line is an ordinary REST error. The caller
// authenticates the request (authn.Middleware) before it gets here.
func (s *Service) WatchStatesREST(w http.ResponseWriter, r *http.Request, _ map[string]string) {
	req := &commandv1.WatchDeviceStatesRequest{}
	for _, v := range r.URL.Query()["device_ids"] {
		id, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			apierror.Write(w, http.StatusBadRequest, connect.CodeInvalidArgument.String(), "device_ids: "+strconv.Quote(v)+" is not a device id")
			return
		}
		req.DeviceIds = append(req.DeviceIds, id)
	}
	rc := http.NewResponseController(w)
	mo := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}
	started := false
	err := s.watchStates(r.Context(), req, func() {
		started = true
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		rc.Flush()
	}, func(m *commandv1.WatchDeviceStatesResponse) error {
		b, err := mo.Marshal(m.GetState())
		if err != nil {
			return err
		}
		line := append(append([]byte(`{"result":`), b...), "}\n"...)
		if _, err := w.Write(line); err != nil {
			return err
		}
		return rc.Flush()
	})
	if err == nil || r.Context().Err() != nil {
		return
	}
	if !started {
		apierror.WriteConnect(w, err)
		return
	}
	code, msg := connect.CodeOf(err), "internal error"
	var ce *connect.Error
	if errors.As(err, &ce) && code != connect.CodeInternal && code != connect.CodeUnknown && code != connect.CodeDataLoss {
		msg = ce.Message() // never an internal error's text
	}
	w.Write([]byte(`{"error":{"code":` + strconv.Quote(code.String()) + `,"message":` + strconv.Quote(msg) + "}}\n"))
	rc.Flush()
}
