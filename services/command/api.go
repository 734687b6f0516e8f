package command

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/commandv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
)

var _ commandv1connect.CommandServiceHandler = (*Service)(nil)

// DesiredCommand is the name of the command that delivers desired attributes.
const DesiredCommand = "$desired"

var commandName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func errorf(code connect.Code, format string, args ...any) error {
	return connect.NewError(code, fmt.Errorf(format, args...))
}

// storeErr maps a store error to a Connect error; unexpected ones are
// logged and hidden.
func (s *Service) storeErr(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return errorf(connect.CodeNotFound, "%s not found", what)
	case errors.Is(err, registry.ErrQueueFull):
		return errorf(connect.CodeResourceExhausted, "the device already has %d commands waiting; wait for them or cancel some", s.cfg.MaxPending)
	case errors.Is(err, registry.ErrFailedPrecondition):
		var pe *registry.PreconditionError
		if errors.As(err, &pe) {
			return errorf(connect.CodeFailedPrecondition, "%s", pe.Reason)
		}
		return errorf(connect.CodeFailedPrecondition, "%s cannot be changed now", what)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	}
	s.log.ErrorContext(ctx, "command store failure", "what", what, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

// device loads a device the calling user may manage (its owner or an
// admin); others get NOT_FOUND, like for a device that does not exist.
func (s *Service) device(ctx context.Context, id int64) (registry.Device, authn.Principal, error) {
	p, err := authn.Require(ctx, authn.KindUser)
	if err != nil {
		return registry.Device{}, p, err
	}
	d, err := s.devices.GetDevice(ctx, id)
	if err != nil {
		return d, p, s.storeErr(ctx, "device", err)
	}
	if !p.Admin && p.ID != d.OwnerID {
		return d, p, errorf(connect.CodeNotFound, "device not found")
	}
	return d, p, nil
}

// command loads a command of a device the caller may manage.
func (s *Service) command(ctx context.Context, id int64) (registry.Command, error) {
	if _, err := authn.Require(ctx, authn.KindUser); err != nil {
		return registry.Command{}, err
	}
	c, err := s.store.GetCommand(ctx, id)
	if err != nil {
		return c, s.storeErr(ctx, "command", err)
	}
	if _, _, err := s.device(ctx, c.DeviceID); err != nil {
		return c, errorf(connect.CodeNotFound, "command not found")
	}
	return c, nil
}

func duration(d interface{ AsDuration() time.Duration }, isSet bool) time.Duration {
	if !isSet {
		return 0
	}
	return d.AsDuration()
}

// SendCommand implements CommandService.SendCommand.
func (s *Service) SendCommand(ctx context.Context, req *commandv1.SendCommandRequest) (*commandv1.SendCommandResponse, error) {
	_, p, err := s.device(ctx, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	if !commandName.MatchString(req.GetName()) {
		return nil, errorf(connect.CodeInvalidArgument, "name: 1-64 letters, digits, '_', '-' or '.'")
	}
	c := registry.Command{DeviceID: req.GetDeviceId(), Name: req.GetName(), CreatedBy: p.ID}
	switch pl := req.GetPayload().(type) {
	case *commandv1.SendCommandRequest_BinaryPayload:
		c.Payload, c.Binary = pl.BinaryPayload, true
	case *commandv1.SendCommandRequest_JsonPayload:
		c.Payload, err = protojson.Marshal(pl.JsonPayload)
		if err != nil {
			return nil, errorf(connect.CodeInvalidArgument, "json_payload: %v", err)
		}
	}
	if c.Payload == nil {
		c.Payload = []byte{}
	}
	if len(c.Payload) > s.cfg.MaxPayload {
		return nil, errorf(connect.CodeInvalidArgument, "payload: %d bytes, at most %d", len(c.Payload), s.cfg.MaxPayload)
	}
	ttl := duration(req.GetTtl(), req.Ttl != nil)
	switch {
	case req.Ttl == nil:
		ttl = s.cfg.DefaultTTL
	case ttl <= 0 || ttl > s.cfg.MaxTTL:
		return nil, errorf(connect.CodeInvalidArgument, "ttl: must be positive and at most %s", s.cfg.MaxTTL)
	}
	wait := duration(req.GetWait(), req.Wait != nil)
	if wait < 0 || wait > s.cfg.MaxWait {
		return nil, errorf(connect.CodeInvalidArgument, "wait: at most %s", s.cfg.MaxWait)
	}
	c.CreatedAt = s.now()
	c.ExpiresAt = c.CreatedAt.Add(ttl)
	// Watch before enqueueing so no change is missed.
	var changes chan int64
	if wait > 0 {
		ch, cancel := s.watch()
		defer cancel()
		changes = ch
	}
	c, err = s.store.EnqueueCommand(ctx, c, s.cfg.MaxPending)
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	s.transitions.WithLabelValues(string(registry.CommandQueued)).Inc()
	if wait > 0 {
		c = s.waitFinal(ctx, c, changes, wait)
	}
	return &commandv1.SendCommandResponse{Result: commandPB(c)}, nil
}

// waitFinal waits until c is final, up to wait, and returns it as it is then.
func (s *Service) waitFinal(ctx context.Context, c registry.Command, changes chan int64, wait time.Duration) registry.Command {
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	poll := time.NewTicker(time.Second) // changes in other processes without NOTIFY
	defer poll.Stop()
	for !c.Status.Final() {
		select {
		case <-ctx.Done():
			return c
		case <-deadline.C:
			return c
		case id := <-changes:
			if id != 0 && id != c.DeviceID {
				continue
			}
		case <-poll.C:
		}
		if n, err := s.store.GetCommand(ctx, c.ID); err == nil {
			c = n
		}
	}
	return c
}

// GetCommand implements CommandService.GetCommand.
func (s *Service) GetCommand(ctx context.Context, req *commandv1.GetCommandRequest) (*commandv1.GetCommandResponse, error) {
	c, err := s.command(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &commandv1.GetCommandResponse{Result: commandPB(c)}, nil
}

// ListCommands implements CommandService.ListCommands.
func (s *Service) ListCommands(ctx context.Context, req *commandv1.ListCommandsRequest) (*commandv1.ListCommandsResponse, error) {
	if _, _, err := s.device(ctx, req.GetDeviceId()); err != nil {
		return nil, err
	}
	size := int(req.GetPageSize())
	if size <= 0 {
		size = 100
	}
	if size > 1000 {
		return nil, errorf(connect.CodeInvalidArgument, "page_size: at most 1000")
	}
	var after int64
	if t := req.GetPageToken(); t != "" {
		b, err := base64.RawURLEncoding.DecodeString(t)
		if err == nil {
			after, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || after < 0 {
			return nil, errorf(connect.CodeInvalidArgument, "page_token: not a token from a previous listing")
		}
	}
	cs, err := s.store.ListCommands(ctx, req.GetDeviceId(), registry.Page{AfterID: after, Limit: size + 1})
	if err != nil {
		return nil, s.storeErr(ctx, "commands", err)
	}
	out := &commandv1.ListCommandsResponse{}
	if len(cs) > size {
		cs = cs[:size]
		out.NextPageToken = base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(cs[size-1].ID, 10)))
	}
	for _, c := range cs {
		out.Result = append(out.Result, commandPB(c))
	}
	return out, nil
}

// CancelCommand implements CommandService.CancelCommand.
func (s *Service) CancelCommand(ctx context.Context, req *commandv1.CancelCommandRequest) (*commandv1.CancelCommandResponse, error) {
	p, _ := authn.FromContext(ctx)
	if _, err := s.command(ctx, req.GetId()); err != nil {
		return nil, err
	}
	c, err := s.store.UpdateCommand(ctx, req.GetId(), registry.CommandUpdate{To: registry.CommandCancelled,
		From: []registry.CommandStatus{registry.CommandQueued, registry.CommandSent, registry.CommandDelivered},
		At:   s.now(), Detail: "cancelled by user " + strconv.FormatInt(p.ID, 10)})
	if err != nil {
		return nil, s.storeErr(ctx, "command", err)
	}
	s.transitions.WithLabelValues(string(registry.CommandCancelled)).Inc()
	return &commandv1.CancelCommandResponse{Result: commandPB(c)}, nil
}

// GetDeviceState implements CommandService.GetDeviceState.
func (s *Service) GetDeviceState(ctx context.Context, req *commandv1.GetDeviceStateRequest) (*commandv1.GetDeviceStateResponse, error) {
	if _, _, err := s.device(ctx, req.GetDeviceId()); err != nil {
		return nil, err
	}
	st, err := s.store.GetDeviceState(ctx, req.GetDeviceId())
	if err != nil {
		return nil, s.storeErr(ctx, "device state", err)
	}
	return &commandv1.GetDeviceStateResponse{Result: statePB(st)}, nil
}

// SetDesiredAttributes implements CommandService.SetDesiredAttributes.
func (s *Service) SetDesiredAttributes(ctx context.Context, req *commandv1.SetDesiredAttributesRequest) (*commandv1.SetDesiredAttributesResponse, error) {
	_, p, err := s.device(ctx, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	desired := req.GetDesired()
	if desired == nil {
		desired = &structpb.Struct{}
	}
	doc, err := protojson.Marshal(desired)
	if err != nil {
		return nil, errorf(connect.CodeInvalidArgument, "desired: %v", err)
	}
	if len(doc) > s.cfg.MaxAttributes {
		return nil, errorf(connect.CodeInvalidArgument, "desired: %d bytes, at most %d", len(doc), s.cfg.MaxAttributes)
	}
	st, err := s.store.SetDesiredAttributes(ctx, req.GetDeviceId(), doc, s.now())
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	payload, _ := json.Marshal(map[string]any{"version": st.DesiredVersion, "desired": json.RawMessage(doc)})
	now := s.now()
	c, err := s.store.EnqueueCommand(ctx, registry.Command{DeviceID: req.GetDeviceId(), Name: DesiredCommand, Payload: payload,
		CreatedBy: p.ID, CreatedAt: now, ExpiresAt: now.Add(s.cfg.MaxTTL)}, s.cfg.MaxPending)
	if err != nil {
		return nil, s.storeErr(ctx, "device", err)
	}
	s.transitions.WithLabelValues(string(registry.CommandQueued)).Inc()
	return &commandv1.SetDesiredAttributesResponse{Result: statePB(st), Command: commandPB(c)}, nil
}

// WatchDeviceStates implements CommandService.WatchDeviceStates.
func (s *Service) WatchDeviceStates(ctx context.Context, req *commandv1.WatchDeviceStatesRequest, stream *connect.ServerStream[commandv1.WatchDeviceStatesResponse]) error {
	return s.watchStates(ctx, req, nil, stream.Send)
}

// watchStates runs WatchDeviceStates: started (when set) once the request
// is accepted, before the first state, then send per state.
func (s *Service) watchStates(ctx context.Context, req *commandv1.WatchDeviceStatesRequest, started func(), send1 func(*commandv1.WatchDeviceStatesResponse) error) error {
	if _, err := authn.Require(ctx, authn.KindUser); err != nil {
		return err // who asks comes before what is asked: no token, no validation hints
	}
	ids := req.GetDeviceIds()
	if len(ids) == 0 || len(ids) > 1000 {
		return errorf(connect.CodeInvalidArgument, "device_ids: name 1 to 1000 devices")
	}
	want := map[int64]bool{}
	for _, id := range ids {
		if _, _, err := s.device(ctx, id); err != nil {
			return err
		}
		want[id] = true
	}
	changes, cancel := s.watch()
	defer cancel()
	last := map[int64]string{}
	send := func(id int64) error {
		st, err := s.store.GetDeviceState(ctx, id)
		if err != nil {
			return s.storeErr(ctx, "device state", err)
		}
		pb := statePB(st)
		b, _ := protojson.Marshal(pb)
		if last[id] == string(b) {
			return nil
		}
		last[id] = string(b)
		return send1(&commandv1.WatchDeviceStatesResponse{State: pb})
	}
	if started != nil {
		started()
	}
	for id := range want {
		if err := send(id); err != nil {
			return err
		}
	}
	recheck := time.NewTicker(5 * time.Second) // ownership, and changes without NOTIFY
	defer recheck.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-changes:
			if id != 0 && !want[id] {
				continue
			}
			for w := range want {
				if id == 0 || id == w {
					if err := send(w); err != nil {
						return err
					}
				}
			}
		case <-recheck.C:
			for w := range want {
				if _, _, err := s.device(ctx, w); err != nil {
					return err
				}
				if err := send(w); err != nil {
					return err
				}
			}
		}
	}
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

var statusPB = map[registry.CommandStatus]commandv1.CommandStatus{
	registry.CommandQueued: commandv1.CommandStatus_COMMAND_STATUS_QUEUED, registry.CommandSent: commandv1.CommandStatus_COMMAND_STATUS_SENT,
	registry.CommandDelivered: commandv1.CommandStatus_COMMAND_STATUS_DELIVERED, registry.CommandSucceeded: commandv1.CommandStatus_COMMAND_STATUS_SUCCEEDED,
	registry.CommandFailed: commandv1.CommandStatus_COMMAND_STATUS_FAILED, registry.CommandExpired: commandv1.CommandStatus_COMMAND_STATUS_EXPIRED,
	registry.CommandCancelled: commandv1.CommandStatus_COMMAND_STATUS_CANCELLED,
}

func jsonValue(b []byte) *structpb.Value {
	if len(b) == 0 {
		return nil
	}
	v := &structpb.Value{}
	if err := protojson.Unmarshal(b, v); err != nil {
		return nil
	}
	return v
}

func jsonStruct(b []byte) *structpb.Struct {
	if len(b) == 0 {
		return nil
	}
	v := &structpb.Struct{}
	if err := protojson.Unmarshal(b, v); err != nil {
		return nil
	}
	return v
}

func commandPB(c registry.Command) *commandv1.Command {
	out := &commandv1.Command{Id: c.ID, DeviceId: c.DeviceID, Name: c.Name, Status: statusPB[c.Status],
		CreatedAt: ts(c.CreatedAt), ExpiresAt: ts(c.ExpiresAt), Result: jsonValue(c.Result), Edge: c.Edge}
	if c.Binary {
		out.Payload = &commandv1.Command_BinaryPayload{BinaryPayload: c.Payload}
	} else if v := jsonValue(c.Payload); v != nil {
		out.Payload = &commandv1.Command_JsonPayload{JsonPayload: v}
	}
	for _, e := range c.History {
		out.History = append(out.History, &commandv1.CommandEvent{Status: statusPB[e.Status], Time: ts(e.At), Detail: e.Detail})
	}
	return out
}

func statePB(s registry.DeviceState) *commandv1.DeviceState {
	return &commandv1.DeviceState{DeviceId: s.DeviceID, Online: s.Connections > 0, Edge: s.Edge, OnlineSince: ts(s.OnlineSince),
		LastSeen: ts(s.LastSeen), Reported: jsonStruct(s.Reported), ReportedAt: ts(s.ReportedAt),
		Desired: jsonStruct(s.Desired), DesiredVersion: s.DesiredVersion, DesiredAt: ts(s.DesiredAt)}
}

// RESTServer adapts the service to the REST transcoder.
type RESTServer struct{ *Service }

var _ commandv1grpc.CommandServiceServer = RESTServer{}

// WatchDeviceStates is not reached: the in-process transcoder has no server
// streams, so its REST binding is served by WatchStatesREST (watchrest.go).
func (RESTServer) WatchDeviceStates(*commandv1.WatchDeviceStatesRequest, grpc.ServerStreamingServer[commandv1.WatchDeviceStatesResponse]) error {
	return connect.NewError(connect.CodeUnimplemented, errors.New("WatchDeviceStates is a server stream: use Connect, gRPC or gRPC-Web"))
}
