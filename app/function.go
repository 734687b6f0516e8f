package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	rulesv1 "github.com/iotplatform/iotplatform/gen/iot/rules/v1"
	"github.com/iotplatform/iotplatform/gen/iot/rules/v1/rulesv1connect"
	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/core"
)

// Function contracts.
const (
	// ContractHTTP is the Cloud Run / Knative contract: REST and Connect on
	// $PORT.
	ContractHTTP = "http"
	// ContractOpenWhisk is the Apache OpenWhisk action interface: POST /init
	// and POST /run on :8080, web-action parameters in, {statusCode,
	// headers, body} out.
	ContractOpenWhisk = "openwhisk"
)

// FunctionConfig configures `iotplatform function`: a stateless process
// serving some Core procedures on PostgreSQL, verifying tokens by JWKS.
type FunctionConfig struct {
	// Procedures are CoreService method names (SignIn,GetDevice).
	Procedures string
	// Group names a set of procedures (users, devices, sensors, consumers,
	// core); it adds to Procedures.
	Group string
	// Contract is ContractHTTP or ContractOpenWhisk.
	Contract string
	// Addr is the listen address (default :$PORT, else :8080).
	Addr        string
	PostgresDSN string
	// KeysDir holds the signing keys; required by procedures that issue
	// tokens (SignIn, the key getters/rotations, ImportDevices). A
	// function never creates keys.
	KeysDir string
	// JWKSURL verifies tokens; empty verifies with the keys in KeysDir.
	JWKSURL      string
	UserTokenTTL time.Duration
	AuthCacheTTL time.Duration
	LogLevel     string
	// Telemetry is tracing and log sampling, the same flags and IOT_*/OTEL_*
	// variables as `serve` (telemetry.go, docs/OPERATIONS.md).
	Telemetry TelemetryConfig
	// envErrs are IOT_* values that did not parse (Validate refuses them).
	envErrs error
}

// RegisterFlags binds the function flags, with IOT_* environment defaults.
func (c *FunctionConfig) RegisterFlags(fs *flag.FlagSet) {
	addr := ":8080"
	if p := os.Getenv("PORT"); p != "" {
		addr = ":" + p
	}
	envflag.String(fs, &c.Procedures, "procedures", "IOT_FUNCTION_PROCEDURES", "", "comma-separated CoreService procedures to serve, e.g. SignIn,GetDevice")
	envflag.String(fs, &c.Group, "group", "IOT_FUNCTION_GROUP", "", "a named group of procedures to serve: "+strings.Join(groupNames(), ", "))
	envflag.String(fs, &c.Contract, "contract", "IOT_FUNCTION_CONTRACT", ContractHTTP, "http (Cloud Run / Knative: REST and Connect on $PORT) or openwhisk (POST /init and /run)")
	envflag.String(fs, &c.Addr, "addr", "IOT_FUNCTION_ADDR", addr, "listen address (default :$PORT, else :8080)")
	envflag.String(fs, &c.PostgresDSN, "postgres-dsn", "IOT_POSTGRES_DSN", "", "PostgreSQL DSN of the registry (required)")
	envflag.String(fs, &c.KeysDir, "keys-dir", "IOT_KEYS_DIR", "", "directory of the Ed25519 signing keys (*.pem), needed by procedures that issue tokens")
	envflag.String(fs, &c.JWKSURL, "jwks-url", "IOT_JWKS_URL", "", "verify tokens with the keys of this JWKS URL; empty uses the keys in --keys-dir")
	envflag.Duration(fs, &c.UserTokenTTL, "user-token-ttl", "IOT_USER_TOKEN_TTL", core.DefaultUserTokenTTL, "lifetime of user tokens from SignIn and RefreshToken")
	envflag.Duration(fs, &c.AuthCacheTTL, "auth-cache-ttl", "IOT_AUTH_CACHE_TTL", cache.TTL, "how long a verified token or device certificate is trusted before rotation/revocation is re-checked (at most 2s, the staleness bound, internal/cache.TTL)")
	envflag.String(fs, &c.LogLevel, "log-level", "IOT_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	c.Telemetry.RegisterFlags(fs)
	c.envErrs = envflag.Errors(fs)
}

// signingProcedures issue tokens, so they need the private keys.
var signingProcedures = []string{"SignIn", "RefreshToken", "GetDeviceKey", "RotateDeviceKey", "GetConsumerKey", "RotateConsumerKey", "ImportDevices"}

// Validate checks the function flags and returns the selected procedures.
func (c *FunctionConfig) Validate() ([]string, error) {
	var errs []error
	if c.envErrs != nil {
		errs = append(errs, c.envErrs)
	}
	routes := coreRoutes()
	known := map[string]bool{}
	for _, r := range routes {
		known[r.procedure] = true
	}
	set := map[string]bool{}
	for _, p := range strings.Split(c.Procedures, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		if !known[p] {
			errs = append(errs, fmt.Errorf("procedures (IOT_FUNCTION_PROCEDURES): unknown CoreService procedure %q", p))
		}
		set[p] = true
	}
	if c.Group != "" {
		ps, ok := procedureGroups()[c.Group]
		if !ok {
			errs = append(errs, fmt.Errorf("group (IOT_FUNCTION_GROUP) %q: want one of %s", c.Group, strings.Join(groupNames(), ", ")))
		}
		for _, p := range ps {
			set[p] = true
		}
	}
	if len(set) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("procedures (IOT_FUNCTION_PROCEDURES) or group (IOT_FUNCTION_GROUP): select what this function serves"))
	}
	if c.Contract != ContractHTTP && c.Contract != ContractOpenWhisk {
		errs = append(errs, fmt.Errorf("contract (IOT_FUNCTION_CONTRACT) %q: want %s or %s", c.Contract, ContractHTTP, ContractOpenWhisk))
	}
	if c.PostgresDSN == "" {
		errs = append(errs, errors.New("postgres-dsn (IOT_POSTGRES_DSN): a function keeps no state, so the registry must be PostgreSQL"))
	}
	if c.KeysDir == "" && c.JWKSURL == "" {
		errs = append(errs, errors.New("jwks-url (IOT_JWKS_URL) or keys-dir (IOT_KEYS_DIR): needed to verify tokens"))
	}
	procs := make([]string, 0, len(set))
	for p := range set {
		procs = append(procs, p)
		if slices.Contains(signingProcedures, p) && c.KeysDir == "" {
			errs = append(errs, fmt.Errorf("keys-dir (IOT_KEYS_DIR): procedure %s issues tokens and needs the signing keys", p))
		}
	}
	if c.UserTokenTTL <= 0 || c.AuthCacheTTL < 0 || c.AuthCacheTTL > cache.TTL {
		errs = append(errs, errors.New("user-token-ttl (IOT_USER_TOKEN_TTL) must be positive and auth-cache-ttl (IOT_AUTH_CACHE_TTL) between 0 and 2s"))
	}
	if err := c.Telemetry.Validate(); err != nil {
		errs = append(errs, err)
	}
	sort.Strings(procs)
	return procs, errors.Join(errs...)
}

// coreRoute is one CoreService procedure and its REST binding.
type coreRoute struct {
	service   string // fully-qualified service name
	procedure string
	method    string   // HTTP method of the REST binding
	segments  []string // path segments; "" matches any one segment
	path      string   // the annotated template, for messages
}

// coreRoutes reads the procedures and their google.api.http bindings from
// the CoreService descriptor, so new procedures need no list here.
func coreRoutes() []coreRoute {
	var out []coreRoute
	for _, sd := range []protoreflect.ServiceDescriptor{
		corev1.File_iot_core_v1_core_proto.Services().ByName("CoreService"),
		rulesv1.File_iot_rules_v1_rules_proto.Services().ByName("RulesService"),         // rules.go
		commandv1.File_iot_command_v1_command_proto.Services().ByName("CommandService"), // commands.go
	} {
		ms := sd.Methods()
		for i := range ms.Len() {
			r := routeOf(ms.Get(i))
			r.service = string(sd.FullName())
			out = append(out, r)
		}
	}
	return out
}

func routeOf(m protoreflect.MethodDescriptor) coreRoute {
	r := coreRoute{procedure: string(m.Name())}
	rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
	switch {
	case rule == nil:
	case rule.GetGet() != "":
		r.method, r.path = http.MethodGet, rule.GetGet()
	case rule.GetPost() != "":
		r.method, r.path = http.MethodPost, rule.GetPost()
	case rule.GetPatch() != "":
		r.method, r.path = http.MethodPatch, rule.GetPatch()
	case rule.GetPut() != "":
		r.method, r.path = http.MethodPut, rule.GetPut()
	case rule.GetDelete() != "":
		r.method, r.path = http.MethodDelete, rule.GetDelete()
	}
	for _, s := range strings.Split(strings.Trim(r.path, "/"), "/") {
		if strings.HasPrefix(s, "{") {
			s = ""
		}
		r.segments = append(r.segments, s)
	}
	return r
}

// group is the named group a procedure belongs to, from its REST path: the
// collection after /api/ (users, devices, consumers, ...), with a device's
// sensors as their own group and /api/me and /api/audit with users; "other" for a
// procedure without a REST binding.
func (r coreRoute) group() string {
	switch p := r.path; {
	case strings.HasPrefix(p, "/api/devices/{device_id}/sensors"):
		return "sensors"
	case p == "/api/me", p == "/api/audit":
		return "users"
	case r.service == rulesv1connect.RulesServiceName && (p == "" || strings.HasPrefix(p, "/api/alerts")):
		return "alerts" // WatchAlerts has no REST binding
	case r.service == rulesv1connect.RulesServiceName:
		return "rules"
	case r.service == commandv1connect.CommandServiceName:
		return "commands"
	case strings.HasPrefix(p, "/api/"):
		return r.segments[1]
	}
	return "other"
}

// procedureGroups maps group names to procedures; "core" is all of them.
func procedureGroups() map[string][]string {
	g := map[string][]string{}
	for _, r := range coreRoutes() {
		g[r.group()] = append(g[r.group()], r.procedure)
		g["core"] = append(g["core"], r.procedure)
	}
	return g
}

func groupNames() []string {
	var names []string
	for n := range procedureGroups() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// matchREST returns the procedure a REST request targets ("" for none):
// the matching binding with the most literal segments wins.
func matchREST(routes []coreRoute, method, path string) (coreRoute, bool) {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	best, bestLit, found := coreRoute{}, -1, false
	for _, r := range routes {
		if r.method != method || len(r.segments) != len(segs) {
			continue
		}
		lit, ok := 0, true
		for i, s := range r.segments {
			if s == "" {
				ok = ok && segs[i] != ""
				continue
			}
			if s != segs[i] {
				ok = false
				break
			}
			lit++
		}
		if ok && lit > bestLit {
			best, bestLit, found = r, lit, true
		}
	}
	return best, found
}

// NewFunction builds a function process; Run serves it. It opens only the
// registry (PostgreSQL) and the keys: no bus, no store, no admin bootstrap
// beyond IOT_ADMIN_PASSWORD when SignIn is served.
func NewFunction(log *slog.Logger, fc FunctionConfig) (*App, error) {
	procs, err := fc.Validate()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := ParseConfig()
	if err != nil {
		return nil, err
	}
	cfg.Roles, cfg.Registry.PostgresDSN, cfg.Auth.KeysDir, cfg.Auth.JWKSURL = "core", fc.PostgresDSN, fc.KeysDir, fc.JWKSURL
	cfg.Core.UserTokenTTL, cfg.Auth.CacheTTL, cfg.API.Addr = fc.UserTokenTTL, fc.AuthCacheTTL, fc.Addr
	cfg.Telemetry = fc.Telemetry
	cfg.DataDir = os.TempDir() // never written: the registry is PostgreSQL and keys come from KeysDir
	a, err := New(log, cfg)
	if err != nil {
		return nil, err
	}
	a.fn = &functionSpec{cfg: fc, procedures: procs}
	return a, nil
}

// functionSpec is what setupFunction serves.
type functionSpec struct {
	cfg        FunctionConfig
	procedures []string
}

// functionModules is the module map of `iotplatform function`: the serve
// map with the auth module replaced (a function never creates keys), no
// TLS (the platform in front terminates it), and the function module
// serving Core filtered to the selected procedures.
func (a *App) functionModules() map[moduleName]module {
	mods := a.modules()
	mods[modAuth] = module{deps: []moduleName{modRegistry}, init: func(context.Context) (err error) {
		a.authParts, err = a.initFunctionAuth()
		return err
	}}
	mods[modAPI] = module{deps: []moduleName{modTelemetry, modLimits, modAuth}, init: mods[modAPI].init}
	mods[modFunction] = module{deps: []moduleName{modRegistry, modAuth, modAPI}, init: a.initFunction}
	return mods
}

// initFunction serves Core, filtered to the selected procedures, on the
// contract's server.
func (a *App) initFunction(ctx context.Context) error {
	svc := core.New(a.log, a.reg, a.signer, a.coreConfig())
	if a.cfg.Core.AdminPassword != "" && slices.Contains(a.fn.procedures, "SignIn") {
		if _, err := svc.EnsureAdmin(ctx, a.cfg.Core.AdminPassword); err != nil {
			return fmt.Errorf("create admin: %w", err)
		}
	}
	a.core = svc
	if err := a.mountCore(ctx, svc); err != nil {
		return err
	}
	if err := a.functionRules(ctx); err != nil {
		return err
	}
	if err := a.functionCommands(ctx); err != nil {
		return err
	}
	a.api.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	a.api.HandleFunc("GET /readyz", a.readyz)
	if a.keys != nil {
		a.api.HandleFunc("GET /.well-known/jwks.json", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "max-age=60")
			w.Write(a.keys.JWKS())
		})
	}
	h := a.functionFilter(a.rootHandler())
	if a.fn.cfg.Contract == ContractOpenWhisk {
		// Each activation is a "POST openwhisk" span; the procedure it runs
		// is its child (the RPC or REST span, as on the server).
		h = telemetry.HTTP("openwhisk", newOpenWhiskAction(a.log, a.guards.proxies, h))
	}
	a.addServer("api", a.cfg.API.Addr, h)
	a.log.Info("function", "contract", a.fn.cfg.Contract, "procedures", strings.Join(a.fn.procedures, ","))
	return nil
}

// initFunctionAuth loads existing keys (a function never creates them) and
// verifies by JWKS when a URL is given.
func (a *App) initFunctionAuth() (authParts, error) {
	c := &a.cfg.Auth
	var p authParts
	var src authn.KeySource
	if dir := c.KeysDir; dir != "" {
		if files, _ := filepath.Glob(filepath.Join(dir, "*.pem")); len(files) == 0 {
			return p, fmt.Errorf("keys-dir (IOT_KEYS_DIR): no *.pem signing keys in %s (a function never creates keys: mount the Secret)", dir)
		}
		keys, err := authn.LoadOrCreateKeys(dir)
		if err != nil {
			return p, fmt.Errorf("signing keys: %w", err)
		}
		p.keys, p.signer, src = keys, authn.NewSigner(keys), keys
	}
	if c.JWKSURL != "" {
		src = authn.NewJWKSSource(c.JWKSURL, nil)
	}
	p.verifier = authn.NewVerifier(src, core.Generations{Reg: a.reg}, authn.VerifierConfig{CacheTTL: c.CacheTTL})
	return p, nil
}

// functionFilter answers 404 for every Core procedure this function does not
// serve (REST or Connect/gRPC), before authentication, and for unknown paths.
func (a *App) functionFilter(next http.Handler) http.Handler {
	routes := coreRoutes()
	served := map[string]bool{}
	for _, p := range a.fn.procedures {
		served[p] = true
	}
	list := strings.Join(a.fn.procedures, ", ")
	prefix, rulesPrefix := "/"+corev1connect.CoreServiceName+"/", "/"+rulesv1connect.RulesServiceName+"/"
	commandsPrefix := "/" + commandv1connect.CommandServiceName + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case path == "/healthz" || path == "/readyz" || path == "/.well-known/jwks.json":
			next.ServeHTTP(w, r)
			return
		case strings.HasPrefix(path, prefix), strings.HasPrefix(path, rulesPrefix), strings.HasPrefix(path, commandsPrefix):
			if proc := path[strings.LastIndexByte(path, '/')+1:]; served[proc] {
				next.ServeHTTP(w, r)
			} else {
				notServed(w, r, fmt.Sprintf("procedure %s is not served by this function (it serves %s)", proc, list))
			}
			return
		case strings.HasPrefix(path, "/api/"):
			method := restMethod(r)
			if rt, ok := matchREST(routes, method, path); !ok {
				notServed(w, r, fmt.Sprintf("no Core procedure at %s %s (this function serves %s)", method, path, list))
			} else if !served[rt.procedure] {
				notServed(w, r, fmt.Sprintf("%s %s is procedure %s, which is not served by this function (it serves %s)", method, path, rt.procedure, list))
			} else {
				next.ServeHTTP(w, r)
			}
			return
		}
		notServed(w, r, fmt.Sprintf("no route %s (this function serves %s)", path, list))
	})
}

// restMethod is the method the REST transcoder will route r by: like
// grpc-gateway, a form-encoded POST may name another method in
// X-HTTP-Method-Override, which must not reach a procedure this function
// does not serve.
func restMethod(r *http.Request) string {
	if o := r.Header.Get("X-HTTP-Method-Override"); o != "" && r.Method == http.MethodPost {
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "application/x-www-form-urlencoded" {
			return strings.ToUpper(o)
		}
	}
	return r.Method
}

// notServed writes a 404 (Connect/REST JSON error) or, for gRPC clients, a
// trailers-only NOT_FOUND.
func notServed(w http.ResponseWriter, r *http.Request, msg string) {
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "5")
		w.Header().Set("Grpc-Message", msg)
		w.WriteHeader(http.StatusOK)
		return
	}
	apierror.Write(w, http.StatusNotFound, connect.CodeNotFound.String(), msg)
}
