package app

import (
	"context"
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/gengrpc/queryv1grpc"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/query"
)

// QueryConfig configures the query role (owned by the storage work).
type QueryConfig struct {
	// AuthCacheTTL bounds how long grants and ownership are cached (≤ 5s).
	AuthCacheTTL time.Duration
	// PollInterval is how often Subscribe polls the store when this process
	// does not run the pipeline (its writes are then not seen in-process).
	PollInterval time.Duration
}

// RegisterFlags binds the query flags.
func (c *QueryConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.AuthCacheTTL, "query-auth-cache-ttl", "IOT_QUERY_AUTH_CACHE_TTL", cache.TTL, "how long sensor ownership and consumer grants are cached by the query role (at most 2s, the staleness bound, internal/cache.TTL): the bound on revocation")
	envflag.Duration(fs, &c.PollInterval, "query-poll-interval", "IOT_QUERY_POLL_INTERVAL", time.Second, "Subscribe poll interval when the pipeline runs in another process")
}

// Validate checks the query flags.
func (c *QueryConfig) Validate() error {
	var errs []error
	if c.AuthCacheTTL > cache.TTL || c.AuthCacheTTL < 0 {
		errs = append(errs, envflag.Errorf("query-auth-cache-ttl", "must be between 0 and %s (the staleness bound)", cache.TTL))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, envflag.Errorf("query-poll-interval", "must be positive"))
	}
	return errors.Join(errs...)
}

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
