package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

// Config is the root configuration: one field group per concern, each
// settable by flag or environment variable (flags win).
type Config struct {
	Roles    string
	DataDir  string
	LogLevel string
	APIAddr  string
	// AdminPassword seeds the `root` admin on first start (env only:
	// IOT_ADMIN_PASSWORD); empty generates a random one.
	AdminPassword string
	PostgresDSN   string
	// UserTokenTTL is the lifetime of sign-in tokens.
	UserTokenTTL time.Duration
	// RefreshTokenTTL is how long a session can be refreshed after sign-in.
	RefreshTokenTTL time.Duration
	// AuthCacheTTL bounds how long a verified token is trusted before its
	// rotation/revocation state is re-read: the staleness bound.
	AuthCacheTTL time.Duration
	// KeysDir holds the Ed25519 signing keys (default <data-dir>/keys).
	KeysDir string
	// JWKSURL makes processes without the core role verify against Core's
	// published keys instead of local key files.
	JWKSURL string
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration
	// DebugAddr serves net/http/pprof when set (keep it on loopback).
	DebugAddr string
	// CORSOrigins are the browser origins allowed to call the API ("*": any).
	CORSOrigins string
	// RegistryCacheEntries bounds the embedded registry's read cache (an
	// LRU, ~0.7 KB per device entry); 0 disables it.
	RegistryCacheEntries int

	Limits LimitsConfig
	// envErrs are IOT_* values that did not parse (Validate refuses them).
	envErrs error

	Ingest   IngestConfig
	TLS      TLSConfig
	Pipeline PipelineConfig
	Query    QueryConfig
	Rules    RulesConfig
}

// RegisterFlags binds every field to fs, with IOT_* environment defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	str(fs, &c.Roles, "roles", "IOT_ROLES", "all", "comma-separated roles to run: all, or any of core,ingest,pipeline,query")
	str(fs, &c.DataDir, "data-dir", "IOT_DATA_DIR", "./data", "directory for the embedded databases, keys and the admin password")
	str(fs, &c.LogLevel, "log-level", "IOT_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	str(fs, &c.APIAddr, "api-addr", "IOT_API_ADDR", ":8080", "address of the API server (Connect, gRPC, gRPC-Web, REST, /metrics, /healthz)")
	str(fs, &c.PostgresDSN, "postgres-dsn", "IOT_POSTGRES_DSN", "", "PostgreSQL DSN for the registry; empty uses SQLite in the data dir")
	dur(fs, &c.UserTokenTTL, "user-token-ttl", "IOT_USER_TOKEN_TTL", 15*time.Minute, "lifetime of user tokens from SignIn and RefreshToken")
	dur(fs, &c.RefreshTokenTTL, "refresh-token-ttl", "IOT_REFRESH_TOKEN_TTL", 7*24*time.Hour, "how long after sign-in a session can be refreshed without signing in again")
	dur(fs, &c.AuthCacheTTL, "auth-cache-ttl", "IOT_AUTH_CACHE_TTL", 5*time.Second, "how long a verified token is trusted before rotation/revocation is re-checked")
	str(fs, &c.KeysDir, "keys-dir", "IOT_KEYS_DIR", "", "directory of Ed25519 signing keys (*.pem); default <data-dir>/keys")
	str(fs, &c.JWKSURL, "jwks-url", "IOT_JWKS_URL", "", "verify tokens with keys from this JWKS URL (for processes without the core role)")
	dur(fs, &c.ShutdownTimeout, "shutdown-timeout", "IOT_SHUTDOWN_TIMEOUT", 15*time.Second, "graceful shutdown limit")
	str(fs, &c.CORSOrigins, "cors-origins", "IOT_CORS_ORIGINS", "", "comma-separated browser origins allowed to call the API cross-origin (\"*\" for any); empty: same origin only")
	integer(fs, &c.RegistryCacheEntries, "registry-cache-entries", "IOT_REGISTRY_CACHE_ENTRIES", registrysql.DefaultCacheEntries, "rows the embedded (SQLite) registry keeps in its LRU read cache, about 0.7 KB each; 0 disables it (entries live 1s at most)")
	str(fs, &c.DebugAddr, "debug-addr", "IOT_DEBUG_ADDR", "", "serve Go profiling (net/http/pprof) on this address; empty disables")
	c.AdminPassword = os.Getenv("IOT_ADMIN_PASSWORD")
	c.Limits.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.TLS.RegisterFlags(fs)
	c.Pipeline.RegisterFlags(fs)
	c.Query.RegisterFlags(fs)
	c.Rules.RegisterFlags(fs)
	c.envErrs = takeEnvErrors(fs)
}

// knownRoles lists every role in start order.
var knownRoles = []string{"core", "pipeline", "ingest", "query"}

// RoleSet returns the roles to run.
func (c *Config) RoleSet() (map[string]bool, error) {
	set := map[string]bool{}
	for _, r := range strings.Split(c.Roles, ",") {
		r = strings.TrimSpace(r)
		switch {
		case r == "all":
			for _, k := range knownRoles {
				set[k] = true
			}
		case r == "":
		default:
			ok := false
			for _, k := range knownRoles {
				ok = ok || k == r
			}
			if !ok {
				return nil, fmt.Errorf("unknown role %q (want all or %s)", r, strings.Join(knownRoles, ","))
			}
			set[r] = true
		}
	}
	if len(set) == 0 {
		return nil, errors.New("no roles selected")
	}
	return set, nil
}

// Validate checks the configuration before anything starts.
func (c *Config) Validate() error {
	if c.envErrs != nil {
		return fmt.Errorf("configuration: %w", c.envErrs)
	}
	if _, err := c.RoleSet(); err != nil {
		return err
	}
	if c.DataDir == "" {
		return errors.New("data-dir must not be empty")
	}
	if c.RegistryCacheEntries < 0 {
		return errors.New("registry-cache-entries (IOT_REGISTRY_CACHE_ENTRIES) must not be negative")
	}
	if c.AdminPassword != "" && len(c.AdminPassword) < 8 {
		return errors.New("IOT_ADMIN_PASSWORD must have at least 8 characters")
	}
	return errors.Join(c.Limits.Validate(), c.Ingest.Validate(), c.TLS.Validate(), c.Pipeline.Validate(), c.Query.Validate(), c.Rules.Validate())
}

func str(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	fs.StringVar(p, name, def, usage+" ($"+env+")")
}

// badEnv collects IOT_* values that did not parse, per flag set, until
// RegisterFlags moves them into the Config (Validate refuses to start).
var badEnv struct {
	sync.Mutex
	m map[*flag.FlagSet][]error
}

func envError(fs *flag.FlagSet, env, value, want string) {
	badEnv.Lock()
	defer badEnv.Unlock()
	if badEnv.m == nil {
		badEnv.m = map[*flag.FlagSet][]error{}
	}
	badEnv.m[fs] = append(badEnv.m[fs], fmt.Errorf("%s=%q: %s", env, value, want))
}

func takeEnvErrors(fs *flag.FlagSet) error {
	badEnv.Lock()
	defer badEnv.Unlock()
	errs := badEnv.m[fs]
	delete(badEnv.m, fs)
	return errors.Join(errs...)
}

func dur(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		} else {
			envError(fs, env, v, "not a duration (e.g. 5s, 2m)")
		}
	}
	fs.DurationVar(p, name, def, usage+" ($"+env+")")
}

// number is dur for a float64.
func number(fs *flag.FlagSet, p *float64, name, env string, def float64, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			def = f
		} else {
			envError(fs, env, v, "not a number")
		}
	}
	fs.Float64Var(p, name, def, usage+" ($"+env+")")
}

// boolean is dur for a bool.
func boolean(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			def = b
		} else {
			envError(fs, env, v, "want true or false")
		}
	}
	fs.BoolVar(p, name, def, usage+" ($"+env+")")
}

func integer(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if n, err := strconv.Atoi(v); err == nil {
			def = n
		} else {
			envError(fs, env, v, "not an integer")
		}
	}
	fs.IntVar(p, name, def, usage+" ($"+env+")")
}

// ParseConfig returns the configuration for serve-style flags in args, with
// IOT_* environment defaults (for tests and embedding).
func ParseConfig(args ...string) (Config, error) {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	err := fs.Parse(args)
	return c, err
}
