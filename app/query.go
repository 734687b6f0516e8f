package app

import (
	"context"
	"errors"

	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/queryv1grpc"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/query"
)

// QueryConfig configures the query role: its flags are
// declared in services/query (Flags).
type QueryConfig = query.Flags

// initQuery registers QueryService (Connect, gRPC, gRPC-Web, REST) and the
// consumer search proxy.
func (a *App) initQuery(ctx context.Context) (*query.Service, error) {
	if a.store == nil {
		return nil, errors.New("query role needs a store")
	}
	cfg := query.Config{AuthCacheTTL: a.cfg.Query.AuthCacheTTL}
	if !a.roles.Has(RolePipeline) {
		cfg.PollInterval = a.cfg.Query.PollInterval
	}
	st := a.store.Store
	if a.bus.wal != nil && a.roles.Has(RolePipeline) {
		st = readBarrier{Store: st, wal: a.bus.wal}
	}
	st = telemetry.Store(st) // query reads as spans when tracing
	svc := query.New(a.log.With("component", "query"), a.reg, st, cfg)
	a.api.Handle(queryv1connect.NewQueryServiceHandler(svc, a.connectOpts...))
	if err := queryv1grpc.RegisterQueryServiceHandlerServer(ctx, a.rest, query.RESTServer{Service: svc}); err != nil {
		return nil, err
	}
	a.grpcServices = append(a.grpcServices, queryv1connect.QueryServiceName)
	search := svc.SearchHandler(a.store.search)
	a.api.Handle(query.SearchPrefix, authn.Middleware(a.verifier, search))
	a.restBypass = append(a.restBypass, query.SearchPrefix)
	// CSV/NDJSON downloads (docs/RULES.md, Export and backfill).
	a.api.Handle(query.ExportPrefix, authn.Middleware(a.verifier, svc.ExportHandler(a.reg)))
	a.restBypass = append(a.restBypass, query.ExportPrefix)
	return svc, nil
}
