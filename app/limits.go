package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/limits"
	"github.com/iotplatform/iotplatform/services/core"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// LimitsConfig holds the abuse defences of every listener (docs/SECURITY.md
// lists them with their defaults), each group declared with its flags in
// the package it configures: the listeners' in internal/limits, sign-in's
// in services/core, the per-device ingest limit's in services/ingest.
type LimitsConfig struct {
	limits.Flags
	SignIn core.SignInConfig
	ingest.RateFlags
}

// RegisterFlags binds the limit flags.
func (c *LimitsConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Flags.RegisterFlags(fs)
	c.SignIn.RegisterFlags(fs)
	c.RateFlags.RegisterFlags(fs)
}

// Validate checks the limit flags.
func (c *LimitsConfig) Validate() error {
	return errors.Join(c.Flags.Validate(), c.SignIn.Validate(), c.RateFlags.Validate())
}

// guards is the per-process state of the defences.
type guards struct {
	proxies   limits.Proxies
	api       int // descriptor share of the API
	edges     *limits.Pool
	listeners *limits.ListenerMetrics
	bodies    *limits.GuardMetrics
	streams   *limits.Streams

	streamingOnce sync.Once
	streaming     map[string]bool
}

// initLimits computes the descriptor budget and the shared limiters.
func (a *App) initLimits() *guards {
	c := &a.cfg.Limits
	proxies, _ := limits.ParseProxies(c.TrustedProxies) // validated
	nofile, api, edges := limits.FDBudget(c.FDReserve)
	if c.APIMaxConns > 0 {
		api = c.APIMaxConns
	}
	g := &guards{proxies: proxies, api: api, edges: limits.NewPool(edges),
		listeners: limits.NewListenerMetrics(a.metrics), bodies: limits.NewGuardMetrics(a.metrics),
		streams: limits.NewStreams(c.MaxStreamsPerCaller, a.metrics)}
	a.log.Info("connection budget", "rlimit_nofile", nofile, "api_conns", api, "edge_conns", edges)
	return g
}

// newServer builds the HTTP server of listener name: header and idle
// timeouts, and the request guard (client address, body size and rate).
func (a *App) newServer(name string, h http.Handler) *http.Server {
	c := &a.cfg.Limits
	g := limits.GuardConfig{Name: name, MaxBody: int64(a.cfg.Ingest.HTTP.MaxBody), MinRate: int64(c.BodyMinRate), Grace: c.BodyGrace, Proxies: a.guards.proxies}
	switch name {
	case "api":
		g.MaxBody, g.Streaming = int64(c.APIMaxBody), a.isStreamingRPC
	case "debug":
		g.MaxBody = 1 << 20
	}
	srv := newHTTPServer(limits.Guard(g, a.guards.bodies, h))
	srv.ReadHeaderTimeout, srv.IdleTimeout = c.ReadHeaderTimeout, c.IdleTimeout
	return srv
}

// capListener applies listener name's connection cap (and, for the device
// edges, the shared descriptor budget).
func (a *App) capListener(name string, ln net.Listener) net.Listener {
	c := &a.cfg.Limits
	lc := limits.ListenerConfig{Name: name}
	switch name {
	case "api":
		lc.MaxConns = a.guards.api
	case "debug":
		lc.MaxConns = 64
	case "http":
		lc.MaxConns, lc.Pool = c.HTTPMaxConns, a.guards.edges
	case "ws":
		lc.MaxConns, lc.Pool = c.WSMaxConns, a.guards.edges
	case "mqtt":
		lc.MaxConns, lc.Pool, lc.FirstReadDeadline = c.MQTTMaxConns, a.guards.edges, c.MQTTConnectTimeout
	}
	return limits.Listen(ln, lc, a.guards.listeners)
}

// isStreamingRPC reports requests to client- or bidi-streaming procedures
// of the registered services (long-lived bodies, exempt from the body
// guard; Connect limits each message).
func (a *App) isStreamingRPC(r *http.Request) bool {
	a.guards.streamingOnce.Do(func() {
		a.guards.streaming = map[string]bool{}
		for _, name := range a.grpcServices {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
			if err != nil {
				continue
			}
			sd, ok := d.(protoreflect.ServiceDescriptor)
			if !ok {
				continue
			}
			for i := 0; i < sd.Methods().Len(); i++ {
				if m := sd.Methods().Get(i); m.IsStreamingClient() || m.IsStreamingServer() {
					a.guards.streaming["/"+name+"/"+string(m.Name())] = true
				}
			}
		}
	})
	return a.guards.streaming[r.URL.Path]
}

// streamCap is the Connect interceptor refusing a caller's streams beyond
// --max-streams-per-caller (resource_exhausted). It runs inside the authn
// interceptor, which put the caller in the context.
type streamCap struct{ s *limits.Streams }

func (streamCap) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc { return next }

func (streamCap) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (c streamCap) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		p, ok := authn.FromContext(ctx)
		if !ok {
			return next(ctx, conn) // the handler refuses anonymous callers
		}
		release, ok := c.s.Acquire(limits.Caller(string(p.Kind), p.ID), "rpc")
		if !ok {
			return connect.NewError(connect.CodeResourceExhausted,
				fmt.Errorf("too many open streams for this token (at most %d)", c.s.Max()))
		}
		defer release()
		return next(ctx, conn)
	}
}
