package app

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/gateway/httpgw"
	gwmqtt "github.com/iotplatform/iotplatform/gateway/mqtt"
	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/commandv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/command"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// CommandConfig configures commands to devices and device state: its flags are
// declared in services/command (Flags).
type CommandConfig = command.Flags

// initCommands creates the command service (a dependency of the core and
// ingest roles) over the registry's command store and serves
// CommandService on the core role.
func (a *App) initCommands(ctx context.Context) (*command.Service, error) {
	store, ok := a.reg.(registry.Commands)
	if !ok {
		a.log.Warn("the registry backend keeps no commands: commands and device state are off")
		return nil, nil
	}
	c := &a.cfg.Commands
	if a.cfg.Registry.PostgresDSN == "" {
		// One process owns the embedded registry: connections counted by
		// a previous run (killed without closing them) are gone.
		if err := store.ResetConnections(ctx); err != nil {
			return nil, fmt.Errorf("reset device connections: %w", err)
		}
	}
	svc := command.New(a.log.With("component", "commands"), command.Config{MaxPayload: c.MaxPayload, MaxAttributes: c.MaxAttributes,
		MaxPending: c.MaxPending, DefaultTTL: c.DefaultTTL, MaxWait: c.MaxWait}, store, a.reg, a.metrics)
	a.addRunner("commands", svc.Run)
	if a.roles.Has(RoleCore) {
		a.api.Handle(commandv1connect.NewCommandServiceHandler(svc, a.connectOpts...))
		a.grpcServices = append(a.grpcServices, commandv1connect.CommandServiceName)
		if err := commandv1grpc.RegisterCommandServiceHandlerServer(ctx, a.rest, command.RESTServer{Service: svc}); err != nil {
			return nil, fmt.Errorf("register command REST: %w", err)
		}
		// The in-process transcoder has no server streams: WatchDeviceStates'
		// REST binding is served as newline-delimited JSON by the service
		// (registered after, so it wins).
		if err := a.rest.HandlePath(http.MethodGet, "/api/device-states/watch", svc.WatchStatesREST); err != nil {
			return nil, fmt.Errorf("register WatchDeviceStates REST: %w", err)
		}
	}
	return svc, nil
}

// functionCommands serves CommandService in a function that serves one of
// its procedures (its role is core; the registry is PostgreSQL: ingest
// processes LISTEN for the commands sent here).
func (a *App) functionCommands(ctx context.Context) (err error) {
	for _, r := range coreRoutes() {
		if r.service == commandv1connect.CommandServiceName && slices.Contains(a.fn.procedures, r.procedure) {
			a.commands, err = a.initCommands(ctx)
			return err
		}
	}
	return nil
}

// enableCommands turns on command delivery on the device edges and serves
// DeviceService (the gRPC device stream) next to IngestService.
func (a *App) enableCommands(ing *ingest.Service, h *httpgw.Gateway, w *gwws.Gateway, m *gwmqtt.Gateway) {
	if a.commands == nil {
		return
	}
	c := &a.cfg.Commands
	h.EnableCommands(a.commands, httpgw.PollConfig{MaxWait: c.PollMaxWait, MaxPerDevice: c.PollPerDevice, MaxTotal: c.PollTotal, MaxBody: int64(c.MaxPayload)})
	w.EnableCommands(a.commands)
	m.EnableCommands(a.commands)
	a.api.Handle(command.NewDeviceHandler(a.commands, streamReadings{ing}).Handler(a.connectOpts...))
	a.grpcServices = append(a.grpcServices, commandv1connect.DeviceServiceName)
}

// ingestHandlerOptions are the Connect options of IngestService: an open
// IngestStream counts the device as connected on the grpc edge.
func (a *App) ingestHandlerOptions() []connect.HandlerOption {
	if a.commands == nil {
		return a.connectOpts
	}
	return append(slices.Clip(a.connectOpts), connect.WithInterceptors(presence{a.commands}))
}

// presence attaches a (command-less) session for each open IngestStream.
type presence struct{ svc *command.Service }

func (presence) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }

func (presence) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (p presence) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		pr, ok := authn.FromContext(ctx)
		if !ok || pr.Kind != authn.KindDevice || conn.Spec().Procedure != ingestv1connect.IngestServiceIngestStreamProcedure {
			return next(ctx, conn)
		}
		sess := p.svc.Attach(pr.ID, command.EdgeGRPC, false)
		defer sess.Close()
		return next(ctx, conn)
	}
}

// streamReadings ingests the readings of DeviceService.Connect like
// IngestStream does.
type streamReadings struct{ svc *ingest.Service }

func (r streamReadings) IngestBatch(ctx context.Context, device int64, req *ingestv1.IngestStreamRequest) *ingestv1.IngestStreamResponse {
	resp := &ingestv1.IngestStreamResponse{Sequence: req.GetSequence()}
	rs, err := ingest.FromProto(req.GetReadings())
	var n int
	if err == nil {
		n, err = r.svc.Ingest(ctx, device, ingest.ProtocolGRPC, rs)
	}
	if err != nil {
		resp.Errors = ingest.ItemErrorsProto(ingest.ItemErrorsOf(err))
	} else {
		resp.Accepted = int32(n)
	}
	return resp
}
