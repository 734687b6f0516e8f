package app

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Config is the root configuration: the process settings, then one group
// per module, each declared (with its RegisterFlags and Validate) in the
// module's file. Every field is settable by flag or IOT_* environment
// variable (flags win).
type Config struct {
	Roles    string
	DataDir  string
	LogLevel string
	// ShutdownTimeout bounds graceful shutdown.
	ShutdownTimeout time.Duration

	API      APIConfig      // api.go
	Registry RegistryConfig // registry.go
	Auth     AuthConfig     // auth.go
	Core     CoreConfig     // core.go
	Limits   LimitsConfig   // limits.go
	TLS      TLSConfig      // tls.go
	Bus      BusConfig      // bus.go
	Store    StoreConfig    // store.go
	Ingest   IngestConfig   // ingest.go
	Query    QueryConfig    // query.go
	Rules    RulesConfig    // rules.go
	Commands CommandConfig  // commands.go
	Console  ConsoleConfig  // console.go
	Runtime  RuntimeConfig  // runtime.go

	// Telemetry is tracing and log sampling (telemetry.go).
	Telemetry TelemetryConfig

	// envErrs are IOT_* values that did not parse (Validate refuses them).
	envErrs error
}

// RegisterFlags binds every field to fs, with IOT_* environment defaults.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Roles, "roles", "IOT_ROLES", "all", "comma-separated roles to run: all, or any of core,ingest,pipeline,query")
	envflag.String(fs, &c.DataDir, "data-dir", "IOT_DATA_DIR", "./data", "directory for the embedded databases, keys and the admin password")
	envflag.String(fs, &c.LogLevel, "log-level", "IOT_LOG_LEVEL", "info", "log level: debug, info, warn, error")
	envflag.Duration(fs, &c.ShutdownTimeout, "shutdown-timeout", "IOT_SHUTDOWN_TIMEOUT", 15*time.Second, "graceful shutdown limit")
	c.API.RegisterFlags(fs)
	c.Registry.RegisterFlags(fs)
	c.Auth.RegisterFlags(fs)
	c.Core.RegisterFlags(fs)
	c.Limits.RegisterFlags(fs)
	c.TLS.RegisterFlags(fs)
	c.Bus.RegisterFlags(fs)
	c.Store.RegisterFlags(fs)
	c.Ingest.RegisterFlags(fs)
	c.Query.RegisterFlags(fs)
	c.Rules.RegisterFlags(fs)
	c.Telemetry.RegisterFlags(fs)
	c.Commands.RegisterFlags(fs)
	c.Console.RegisterFlags(fs)
	c.Runtime.RegisterFlags(fs)
	c.envErrs = envflag.Errors(fs)
}

// Validate checks the configuration before anything starts: values that
// did not parse, each module's settings, and combinations the modules
// cannot run (e.g. ingest without the pipeline on the embedded bus). Every
// message names the flag or variable.
func (c *Config) Validate() error {
	if c.envErrs != nil {
		return fmt.Errorf("configuration: %w", c.envErrs)
	}
	roles, err := ParseRoles(c.Roles)
	if err != nil {
		return err
	}
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir (IOT_DATA_DIR) must not be empty"))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, envflag.Errorf("shutdown-timeout", "must be positive"))
	}
	errs = append(errs, c.Registry.Validate(), c.Auth.Validate(), c.Core.Validate(), c.Limits.Validate(), c.TLS.Validate(),
		c.Bus.Validate(), c.Store.Validate(), c.Ingest.Validate(), c.Query.Validate(), c.Commands.Validate(), c.Console.Validate(), c.Rules.Validate(), c.Telemetry.Validate(), c.Runtime.Validate(), c.Bus.validateRoles(roles))
	return errors.Join(errs...)
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
