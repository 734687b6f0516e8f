package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"slices"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/gateway/httpgw"
	gwmqtt "github.com/iotplatform/iotplatform/gateway/mqtt"
	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/gengrpc/commandv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/command"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// CommandConfig configures commands to devices and device state
// (docs/COMMANDS.md).
type CommandConfig struct {
	MaxPayload    int
	MaxAttributes int
	MaxPending    int
	DefaultTTL    time.Duration
	MaxWait       time.Duration
	PollMaxWait   time.Duration
	PollPerDevice int
	PollTotal     int
}

// RegisterFlags binds the command flags.
func (c *CommandConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.MaxPayload, "command-max-payload", "IOT_COMMAND_MAX_PAYLOAD", 64<<10, "largest command payload and device answer in bytes")
	envflag.Int(fs, &c.MaxAttributes, "command-max-attributes", "IOT_COMMAND_MAX_ATTRIBUTES", 16<<10, "largest reported or desired attributes document in bytes")
	envflag.Int(fs, &c.MaxPending, "command-max-pending", "IOT_COMMAND_MAX_PENDING", 100, "commands of one device not yet final (queued, sent, delivered); more are refused with resource_exhausted")
	envflag.Duration(fs, &c.DefaultTTL, "command-default-ttl", "IOT_COMMAND_DEFAULT_TTL", time.Hour, "time to live of a command sent without one")
	envflag.Duration(fs, &c.MaxWait, "command-max-wait", "IOT_COMMAND_MAX_WAIT", time.Minute, "longest SendCommand wait for the device's answer")
	envflag.Duration(fs, &c.PollMaxWait, "command-poll-max-wait", "IOT_COMMAND_POLL_MAX_WAIT", time.Minute, "longest HTTP long-poll (GET /commands?wait=) on the HTTP gateway")
	envflag.Int(fs, &c.PollPerDevice, "command-poll-per-device", "IOT_COMMAND_POLL_PER_DEVICE", 2, "HTTP long-polls one device may hold open (429 above)")
	envflag.Int(fs, &c.PollTotal, "command-poll-total", "IOT_COMMAND_POLL_TOTAL", 1000, "HTTP long-polls open at once on the gateway (429 above)")
}

// Validate checks the command flags.
func (c *CommandConfig) Validate() error {
	var errs []error
	if c.MaxPayload <= 0 || c.MaxPayload > 16<<20 {
		errs = append(errs, envflag.Errorf("command-max-payload", "must be between 1 and 16 MiB"))
	}
	if c.MaxAttributes <= 0 || c.MaxAttributes > 1<<20 {
		errs = append(errs, envflag.Errorf("command-max-attributes", "must be between 1 and 1 MiB"))
	}
	if c.MaxPending <= 0 {
		errs = append(errs, envflag.Errorf("command-max-pending", "must be positive"))
	}
	if c.DefaultTTL <= 0 {
		errs = append(errs, envflag.Errorf("command-default-ttl", "must be positive"))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, envflag.Errorf("command-max-wait", "must be positive"))
	}
	if c.PollMaxWait <= 0 {
		errs = append(errs, envflag.Errorf("command-poll-max-wait", "must be positive"))
	}
	if c.PollPerDevice <= 0 || c.PollTotal <= 0 {
		errs = append(errs, errors.New("command-poll-per-device (IOT_COMMAND_POLL_PER_DEVICE) and command-poll-total (IOT_COMMAND_POLL_TOTAL) must be positive"))
	}
	return errors.Join(errs...)
}

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
	a.api.Handle(commandv1connect.NewDeviceServiceHandler(command.NewDeviceHandler(a.commands, streamReadings{ing}), a.connectOpts...))
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
