package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math"
	"net"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/limits"
	"github.com/iotplatform/iotplatform/services/core"
)

// LimitsConfig holds the abuse defences of every listener (docs/SECURITY.md
// lists them with their defaults).
type LimitsConfig struct {
	// APIMaxBody bounds request bodies and Connect/gRPC messages on the API.
	APIMaxBody int
	// BodyMinRate (bytes/s) and BodyGrace cut off request bodies that
	// trickle in (slowloris after the headers); streaming RPCs are exempt.
	BodyMinRate int
	BodyGrace   time.Duration
	// ReadHeaderTimeout and IdleTimeout apply to every HTTP listener.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// Connection caps per listener (0: automatic, from the descriptor budget).
	APIMaxConns, HTTPMaxConns, WSMaxConns, MQTTMaxConns int
	// FDReserve descriptors are kept for the API and internal use; the
	// device edges share the rest of RLIMIT_NOFILE (0: a quarter, ≥ 256).
	FDReserve int
	// MQTTConnectTimeout closes MQTT connections that have not sent CONNECT.
	MQTTConnectTimeout time.Duration
	// MaxStreamsPerCaller caps concurrent Subscribe/IngestStream/WebSocket/
	// MQTT streams per token subject.
	MaxStreamsPerCaller int
	// TrustedProxies (IPs/CIDRs) may set X-Forwarded-For; empty trusts none.
	TrustedProxies string

	SignIn core.SignInConfig

	// IngestRate (readings/s per device, all edges together; 0: unlimited)
	// and IngestBurst are the defaults a device's own limit in Core overrides.
	IngestRate  float64
	IngestBurst int
}

// RegisterFlags binds the limit flags.
func (c *LimitsConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.APIMaxBody, "api-max-body", "IOT_API_MAX_BODY", 8<<20, "largest request body and Connect/gRPC message on the API in bytes (413 / resource_exhausted above)")
	envflag.Int(fs, &c.BodyMinRate, "body-min-rate", "IOT_BODY_MIN_RATE", 1024, "slowest accepted request body in bytes/s after --body-grace, on every HTTP listener (streaming RPCs exempt); 0 disables")
	envflag.Duration(fs, &c.BodyGrace, "body-grace", "IOT_BODY_GRACE", 10*time.Second, "time a request body may take before --body-min-rate applies")
	envflag.Duration(fs, &c.ReadHeaderTimeout, "read-header-timeout", "IOT_READ_HEADER_TIMEOUT", 10*time.Second, "time to read a request's headers on every HTTP listener")
	envflag.Duration(fs, &c.IdleTimeout, "idle-timeout", "IOT_IDLE_TIMEOUT", 120*time.Second, "keep-alive HTTP connections idle this long are closed")
	envflag.Int(fs, &c.APIMaxConns, "api-max-conns", "IOT_API_MAX_CONNS", 0, "most open API connections; 0: the descriptors reserved by --fd-reserve")
	envflag.Int(fs, &c.HTTPMaxConns, "http-max-conns", "IOT_HTTP_MAX_CONNS", 0, "most open HTTP ingest connections; 0: bounded by the edges' shared descriptor budget only")
	envflag.Int(fs, &c.WSMaxConns, "ws-max-conns", "IOT_WS_MAX_CONNS", 0, "most open WebSocket connections; 0: bounded by the edges' shared descriptor budget only")
	envflag.Int(fs, &c.MQTTMaxConns, "mqtt-max-conns", "IOT_MQTT_MAX_CONNS", 0, "most open MQTT connections; 0: bounded by the edges' shared descriptor budget only")
	envflag.Int(fs, &c.FDReserve, "fd-reserve", "IOT_FD_RESERVE", 0, "file descriptors kept for the API and internal use; the device edges share the rest of RLIMIT_NOFILE (0: a quarter, at least 256)")
	envflag.Duration(fs, &c.MQTTConnectTimeout, "mqtt-connect-timeout", "IOT_MQTT_CONNECT_TIMEOUT", 10*time.Second, "MQTT connections that have not sent CONNECT within this time are closed")
	envflag.Int(fs, &c.MaxStreamsPerCaller, "max-streams-per-caller", "IOT_MAX_STREAMS_PER_CALLER", 100, "concurrent Subscribe, IngestStream, WebSocket and MQTT streams one token subject may hold; 0: unlimited")
	envflag.String(fs, &c.TrustedProxies, "trusted-proxies", "IOT_TRUSTED_PROXIES", "", "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed for per-address throttling; empty: none")
	envflag.Int(fs, &c.SignIn.Workers, "signin-workers", "IOT_SIGNIN_WORKERS", 0, "concurrent password hashes (argon2id, 19 MiB each); 0: the number of CPUs")
	envflag.Int(fs, &c.SignIn.Queue, "signin-queue", "IOT_SIGNIN_QUEUE", 32, "sign-ins waiting for a hash worker; more are refused at once (503)")
	envflag.Duration(fs, &c.SignIn.Wait, "signin-wait", "IOT_SIGNIN_WAIT", 2*time.Second, "how long a sign-in waits for a hash worker before 503 with Retry-After")
	envflag.Int(fs, &c.SignIn.PerAddress, "signin-per-address", "IOT_SIGNIN_PER_ADDRESS", 4, "sign-ins one client address may have waiting or hashing at once; more are refused (429)")
	envflag.Int(fs, &c.SignIn.AccountFree, "signin-account-free", "IOT_SIGNIN_ACCOUNT_FREE", 5, "failed sign-ins in a row per account before exponential backoff (429 with Retry-After)")
	envflag.Int(fs, &c.SignIn.AddressFree, "signin-address-free", "IOT_SIGNIN_ADDRESS_FREE", 20, "failed sign-ins in a row per client address before exponential backoff")
	envflag.Duration(fs, &c.SignIn.BackoffBase, "signin-backoff-base", "IOT_SIGNIN_BACKOFF_BASE", time.Second, "first sign-in backoff window, doubled by each further failure")
	envflag.Float64(fs, &c.IngestRate, "ingest-rate", "IOT_INGEST_RATE", 0, "default ingest limit of a device in readings/s over all edges (HTTP 429, resource_exhausted, MQTT 5 reason 0x96); 0: unlimited; a device's ingest_limit in Core overrides it")
	envflag.Int(fs, &c.IngestBurst, "ingest-burst", "IOT_INGEST_BURST", 0, "default burst of a device's ingest limit in readings; 0: one second's worth of --ingest-rate")
	envflag.Duration(fs, &c.SignIn.BackoffMax, "signin-backoff-max", "IOT_SIGNIN_BACKOFF_MAX", time.Minute, "longest sign-in backoff window (never a permanent lockout)")
}

// Validate checks the limit flags.
func (c *LimitsConfig) Validate() error {
	var errs []error
	for name, v := range map[string]int{"api-max-body": c.APIMaxBody, "body-min-rate": c.BodyMinRate, "api-max-conns": c.APIMaxConns,
		"http-max-conns": c.HTTPMaxConns, "ws-max-conns": c.WSMaxConns, "mqtt-max-conns": c.MQTTMaxConns, "fd-reserve": c.FDReserve,
		"max-streams-per-caller": c.MaxStreamsPerCaller, "signin-workers": c.SignIn.Workers, "signin-queue": c.SignIn.Queue, "signin-per-address": c.SignIn.PerAddress,
		"signin-account-free": c.SignIn.AccountFree, "signin-address-free": c.SignIn.AddressFree, "ingest-burst": c.IngestBurst} {
		if v < 0 {
			errs = append(errs, envflag.Errorf(name, "must not be negative"))
		}
	}
	if c.IngestRate < 0 || math.IsNaN(c.IngestRate) || math.IsInf(c.IngestRate, 0) {
		errs = append(errs, envflag.Errorf("ingest-rate", "must be a finite number ≥ 0"))
	}
	if c.APIMaxBody == 0 {
		errs = append(errs, envflag.Errorf("api-max-body", "must be positive"))
	}
	for name, d := range map[string]time.Duration{"body-grace": c.BodyGrace, "read-header-timeout": c.ReadHeaderTimeout,
		"idle-timeout": c.IdleTimeout, "mqtt-connect-timeout": c.MQTTConnectTimeout, "signin-wait": c.SignIn.Wait,
		"signin-backoff-base": c.SignIn.BackoffBase, "signin-backoff-max": c.SignIn.BackoffMax} {
		if d <= 0 {
			errs = append(errs, envflag.Errorf(name, "must be positive"))
		}
	}
	if _, err := limits.ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", envflag.Name("trusted-proxies"), err))
	}
	return errors.Join(errs...)
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
	g := limits.GuardConfig{Name: name, MaxBody: int64(a.cfg.Ingest.HTTPMaxBody), MinRate: int64(c.BodyMinRate), Grace: c.BodyGrace, Proxies: a.guards.proxies}
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
