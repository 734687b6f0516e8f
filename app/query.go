package app

import (
	"context"
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/queryv1grpc"
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
	dur(fs, &c.AuthCacheTTL, "query-auth-cache-ttl", "IOT_QUERY_AUTH_CACHE_TTL", 5*time.Second, "how long sensor ownership and consumer grants are cached by the query role (at most 5s): the bound on revocation")
	dur(fs, &c.PollInterval, "query-poll-interval", "IOT_QUERY_POLL_INTERVAL", time.Second, "Subscribe poll interval when the pipeline runs in another process")
}

// Validate checks the query flags.
func (c *QueryConfig) Validate() error {
	if c.AuthCacheTTL > 5*time.Second {
		return errors.New("--query-auth-cache-ttl must be at most 5s")
	}
	if c.PollInterval <= 0 {
		return errors.New("--query-poll-interval must be positive")
	}
	return nil
}

// setupQuery registers QueryService (Connect, gRPC, gRPC-Web, REST) and the
// consumer search proxy.
func (a *App) setupQuery(ctx context.Context) error {
	if a.ext.store == nil {
		return errors.New("query role needs a store")
	}
	cfg := query.Config{AuthCacheTTL: a.cfg.Query.AuthCacheTTL}
	if !a.roles["pipeline"] {
		cfg.PollInterval = a.cfg.Query.PollInterval
	}
	st := a.ext.store
	if a.ext.wal != nil && a.roles["pipeline"] {
		st = readBarrier{Store: st, wal: a.ext.wal}
	}
	svc := query.New(a.log.With("component", "query"), a.reg, st, cfg)
	a.api.Handle(queryv1connect.NewQueryServiceHandler(svc, a.connectOpts...))
	if err := queryv1grpc.RegisterQueryServiceHandlerServer(ctx, a.rest, query.RESTServer{Service: svc}); err != nil {
		return err
	}
	a.grpcServices = append(a.grpcServices, queryv1connect.QueryServiceName)
	search := svc.SearchHandler(a.ext.search)
	a.api.Handle(query.SearchPrefix, authn.Middleware(a.verifier, search))
	a.restBypass = append(a.restBypass, query.SearchPrefix)
	return nil
}
