// Package app is the composition root: it turns a Config into running
// servers for the selected roles, wires backends chosen at run time, and
// shuts everything down gracefully.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/command"
	"github.com/iotplatform/iotplatform/services/core"
	"github.com/iotplatform/iotplatform/services/ingest"
	"github.com/iotplatform/iotplatform/services/pipeline"
	"github.com/iotplatform/iotplatform/services/query"
	"github.com/iotplatform/iotplatform/services/rules"
)

// App is one running platform process: the modules its roles need
// (modules.go), and the listeners, runners and closers they registered.
type App struct {
	log   *slog.Logger
	cfg   Config
	roles Roles
	opts  options // New's options (options.go)

	// What the modules provide, each set once by the module map from its
	// init function's result (nil or zero when the module does not run).
	reg       registry.Registry // registry
	authParts                   // auth: keys, signer, verifier
	tlsParts                    // tls: listener configurations, device CAs
	apiParts                    // api: connectOpts, rest
	guards    *guards           // limits: the abuse defences shared by the listeners
	store     *storeParts       // store (nil when no role reads or writes readings)
	bus       *busParts         // bus
	core      *core.Service
	pipeline  *pipeline.Pipeline
	sensors   *registry.SensorCache // shared by ingest and the pipeline (sensorCache)
	ingest    *ingest.Service
	query     *query.Service
	rules     *rules.Service   // rules (with core)
	alerting  *rules.Engine    // alerting (with the pipeline)
	retention *rules.Retainer  // retention (with the pipeline)
	commands  *command.Service // commands (commands.go)
	console   consoleFiles     // console (nil with --console=false)

	// tracing is what the telemetry module provides (disabled without an
	// OTLP endpoint; telemetry.go).
	tracing *telemetry.Provider
	// ops are the readiness gauges (opsmetrics.go; nil in function mode).
	ops *opsGauges

	// The process: what every module may register on.
	// api serves Connect/gRPC/gRPC-Web handlers by procedure path.
	api        *http.ServeMux
	metrics    *prometheus.Registry
	rpcMetrics *rpcMetrics
	// readyChecks must all pass for /readyz.
	readyChecks map[string]func(context.Context) error
	// grpcServices lists services for reflection and health.
	grpcServices []string
	// restBypass lists /api/ path prefixes that a.api serves directly.
	restBypass []string

	servers []*server
	runners []runner
	closers []func() error

	// fn is set in function mode (NewFunction).
	fn *functionSpec

	// ready is closed once every server listens; Addr reports bound addresses.
	ready chan struct{}
	mu    sync.Mutex
	addrs map[string]string
}

type server struct {
	name string
	addr string
	srv  *http.Server
	ln   net.Listener
	tls  *tls.Config
	// tlsListener, when set, wraps ln under crypto/tls (serve).
	tlsListener func(net.Listener) net.Listener
}

type runner struct {
	name string
	run  func(ctx context.Context) error
}

// New builds the process for cfg; Run starts it.
func New(log *slog.Logger, cfg Config, opts ...Option) (*App, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	cfg.Bus.provided = o.pub != nil
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	roles, _ := ParseRoles(cfg.Roles) // validated
	cfg.Runtime.apply()
	log = wrapLogger(log, cfg.Telemetry)
	a := &App{
		log: log, cfg: cfg, roles: roles, opts: o,
		api:         http.NewServeMux(),
		metrics:     prometheus.NewRegistry(),
		readyChecks: map[string]func(context.Context) error{},
		ready:       make(chan struct{}),
		addrs:       map[string]string{},
	}
	a.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.rpcMetrics = newRPCMetrics(a.metrics)
	a.readyChecks["disk"] = diskSpaceCheck(cfg.DataDir, minFreeBytes)
	return a, nil
}

// onClose registers fn to run at shutdown, in reverse order.
func (a *App) onClose(fn func() error) { a.closers = append(a.closers, fn) }

// addServer serves h on addr for the process lifetime.
func (a *App) addServer(name, addr string, h http.Handler) *server {
	s := &server{name: name, addr: addr, srv: a.newServer(name, h), tls: a.tls[name]}
	a.servers = append(a.servers, s)
	return s
}

// addRunner runs fn until ctx is cancelled; an error stops the process.
func (a *App) addRunner(name string, fn func(ctx context.Context) error) {
	a.runners = append(a.runners, runner{name, fn})
}

func newHTTPServer(h http.Handler) *http.Server {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	return &http.Server{Handler: h, Protocols: p, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
}

// Addr returns the bound address of a named listener ("api", "http", ...),
// valid after Ready is closed.
func (a *App) Addr(name string) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.addrs[name]
}

// Ready is closed when every listener is bound.
func (a *App) Ready() <-chan struct{} { return a.ready }

// Run sets up every selected role, serves until ctx is done, then shuts
// down gracefully.
func (a *App) Run(ctx context.Context) (err error) {
	defer func() {
		for i := len(a.closers) - 1; i >= 0; i-- {
			if cerr := a.closers[i](); cerr != nil {
				a.log.Warn("close failed", "err", cerr)
			}
		}
	}()
	if err := a.setup(ctx); err != nil {
		return err
	}
	for _, s := range a.servers {
		ln, err := net.Listen("tcp", s.addr)
		if err != nil {
			for _, o := range a.servers {
				if o.ln != nil {
					o.ln.Close()
				}
			}
			return fmt.Errorf("listen %s on %s: %w", s.name, s.addr, err)
		}
		s.ln = a.capListener(s.name, ln)
		a.mu.Lock()
		a.addrs[s.name] = ln.Addr().String()
		a.mu.Unlock()
		a.log.Info("listening", "server", s.name, "addr", ln.Addr().String(), "tls", s.tls != nil)
	}
	close(a.ready)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(a.servers)+len(a.runners))
	var wg sync.WaitGroup
	for _, s := range a.servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("serve %s: %w", s.name, err)
			}
		}()
	}
	for _, r := range a.runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := r.run(ctx); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("%s: %w", r.name, err)
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
		a.log.Error("stopping after failure", "err", err)
	}
	cancel()
	sctx, scancel := context.WithTimeout(context.Background(), a.cfg.ShutdownTimeout)
	defer scancel()
	for _, s := range a.servers {
		if serr := s.srv.Shutdown(sctx); serr != nil {
			a.log.Warn("shutdown", "server", s.name, "err", serr)
		}
	}
	wg.Wait()
	a.log.Info("stopped")
	return err
}

// setup runs the module map: the modules of the process's roles and
// everything they depend on, in dependency order.
func (a *App) setup(ctx context.Context) error {
	if a.fn != nil {
		return initModules(ctx, a.functionModules(), []moduleName{modFunction})
	}
	return initModules(ctx, a.modules(), a.targets())
}
