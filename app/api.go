package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"net/http"
	"net/http/pprof"
	"slices"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"connectrpc.com/grpcreflect"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/restjson"
	"github.com/iotplatform/iotplatform/internal/telemetry"
)

// APIConfig configures the API server (Connect, gRPC, gRPC-Web, REST,
// /metrics, /healthz, /readyz) and the profiling listener.
type APIConfig struct {
	Addr string
	// CORSOrigins are the browser origins allowed to call the API ("*": any).
	CORSOrigins string
	// DebugAddr serves net/http/pprof when set (keep it on loopback).
	DebugAddr string
}

// RegisterFlags binds the API flags.
func (c *APIConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Addr, "api-addr", "IOT_API_ADDR", ":8080", "address of the API server (Connect, gRPC, gRPC-Web, REST, /metrics, /healthz)")
	envflag.String(fs, &c.CORSOrigins, "cors-origins", "IOT_CORS_ORIGINS", "", "comma-separated browser origins allowed to call the API cross-origin (\"*\" for any); empty: same origin only")
	envflag.String(fs, &c.DebugAddr, "debug-addr", "IOT_DEBUG_ADDR", "", "serve Go profiling (net/http/pprof) on this address; empty disables")
}

// apiParts is what the api module provides to the modules that serve
// RPCs: the Connect handler options (metrics, authentication, stream cap,
// limits) and the REST transcoder. Handlers go on a.api, the mux every
// module registers on.
type apiParts struct {
	connectOpts []connect.HandlerOption
	rest        *runtime.ServeMux
}

// initAPI prepares the Connect options and the REST transcoder that the
// roles register their services on.
func (a *App) initAPI() apiParts {
	var p apiParts
	p.connectOpts = append(a.traceOpts(),
		connect.WithInterceptors(a.rpcMetrics.interceptor(), authn.NewInterceptor(a.auth()), streamCap{a.guards.streams}),
		connect.WithReadMaxBytes(a.cfg.Limits.APIMaxBody),
		// Small answers are cheaper to send than to gzip.
		connect.WithCompressMinBytes(4<<10),
	)
	p.rest = runtime.NewServeMux(
		// restjson writes protojson's JSON for these options from cached
		// per-type plans (protojson was half the CPU of REST reads).
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: restjson.Marshaler{JSONPb: &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}}),
		runtime.WithErrorHandler(restError),
		runtime.WithRoutingErrorHandler(restRoutingError),
		runtime.WithForwardResponseOption(func(ctx context.Context, _ http.ResponseWriter, _ proto.Message) error {
			if h := restInfoFrom(ctx); h != nil {
				h.method, _ = runtime.RPCMethod(ctx)
			}
			return nil
		}),
		// Only the Authorization header matters and it is verified by the
		// middleware; do not forward arbitrary headers as metadata.
		runtime.WithIncomingHeaderMatcher(func(string) (string, bool) { return "", false }),
	)
	return p
}

// initServer mounts health, reflection, metrics, keys and the OpenAPI
// document, and serves the API on --api-addr. It runs after every role
// module has registered its handlers.
func (a *App) initServer() {
	a.api.Handle(grpchealth.NewHandler(grpchealth.NewStaticChecker(a.grpcServices...)))
	// Reflection lists the health service too (`grpcurl list` shows
	// grpc.health.v1.Health, the service load balancers probe).
	reflector := grpcreflect.NewStaticReflector(append(slices.Clone(a.grpcServices), grpchealth.HealthV1ServiceName)...)
	a.api.Handle(grpcreflect.NewHandlerV1(reflector))
	a.api.Handle(grpcreflect.NewHandlerV1Alpha(reflector))
	a.api.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
	a.api.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	a.api.HandleFunc("GET /readyz", a.readyz)
	if a.keys != nil {
		a.api.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "max-age=60")
			w.Write(a.keys.JWKS())
		})
	}
	a.mountDocs() // /openapi.json and Swagger UI at /docs/ (docs.go)
	var origins []string
	if a.cfg.API.CORSOrigins != "" {
		origins = strings.Split(a.cfg.API.CORSOrigins, ",")
	}
	a.addServer("api", a.cfg.API.Addr, withCORS(origins, a.rootHandler()))
	if a.cfg.API.DebugAddr != "" {
		dbg := http.NewServeMux()
		dbg.HandleFunc("/debug/pprof/", pprof.Index)
		dbg.HandleFunc("/debug/pprof/profile", pprof.Profile)
		dbg.HandleFunc("/debug/pprof/trace", pprof.Trace)
		dbg.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		a.addServer("debug", a.cfg.API.DebugAddr, dbg)
	}
}

// rootHandler sends /api/* to the REST transcoder (behind the auth
// middleware) and everything else to the Connect mux.
func (a *App) rootHandler() http.Handler {
	rest := telemetry.HTTP("rest", authn.Middleware(a.auth(), a.rpcMetrics.rest(trimSlash(a.rest))))
	// Connect interceptors see the client certificate through the context.
	return telemetry.RequestIDs(authn.WithPeerCertificates(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && !a.bypassREST(r.URL.Path) {
			rest.ServeHTTP(w, r)
			return
		}
		a.api.ServeHTTP(w, r)
	})))
}

// restBypass lists /api/ path prefixes served by plain handlers on a.api
// instead of the transcoder (e.g. the consumer search proxy).
func (a *App) bypassREST(path string) bool {
	for _, p := range a.restBypass {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// trimSlash accepts the original API's trailing slashes (/api/devices/).
func trimSlash(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = strings.TrimRight(p, "/")
			r2.URL.RawPath = ""
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}

func (a *App) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for name, err := range a.checkReadiness(ctx) {
		a.log.WarnContext(ctx, "not ready", "check", name, "err", err)
		failed[name] = "unavailable"
	}
	w.Header().Set("Content-Type", "application/json")
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]any{"status": "unavailable", "failed": failed})
		return
	}
	json.NewEncoder(w).Encode(map[string]any{"status": "ok"})
}

// restError writes errors from services (Connect errors) and from the
// transcoder itself (gRPC status errors) in the one error shape
// (apierror.WriteConnect).
func restError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
	var ce *connect.Error
	if !errors.As(err, &ce) {
		if st, ok := status.FromError(err); ok {
			code, msg := connect.Code(st.Code()), st.Message()
			if code == connect.CodeUnimplemented && msg == "" {
				code = connect.CodeNotFound
			}
			if code == connect.CodeInvalidArgument {
				msg = transcoderMessage(msg)
			}
			err = connect.NewError(code, errors.New(msg))
		}
	}
	code := apierror.WriteConnect(w, err)
	if h := restInfoFrom(ctx); h != nil {
		h.method, _ = runtime.RPCMethod(ctx)
		h.code = code
	}
}
