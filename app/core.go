package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/corev1grpc"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/services/core"
)

// setupRegistry opens PostgreSQL when a DSN is given, else SQLite in the data dir.
func (a *App) setupRegistry(ctx context.Context) error {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	var err error
	if a.cfg.PostgresDSN != "" {
		a.reg, err = registrysql.OpenPostgres(ctx, a.cfg.PostgresDSN)
		a.log.Info("registry", "backend", "postgres")
	} else {
		path := filepath.Join(a.cfg.DataDir, "registry.db")
		var db *registrysql.DB
		db, err = registrysql.OpenSQLiteConfig(ctx, path, registrysql.SQLiteConfig{Log: a.log.With("component", "registry"), CacheEntries: registryCacheEntries(a.cfg.RegistryCacheEntries)})
		if err == nil {
			a.reg = db
			a.registerWAL("registry", db)
		}
		a.log.Info("registry", "backend", "sqlite", "path", path)
	}
	if err != nil {
		return fmt.Errorf("open registry: %w", err)
	}
	a.onClose(a.reg.Close)
	a.readyChecks["registry"] = a.reg.Ping
	return nil
}

// setupAuth loads (or creates) the signing keys, or uses a remote JWKS for
// processes without the core role, and builds THE verifier.
func (a *App) setupAuth(context.Context) error {
	var src authn.KeySource
	if a.cfg.JWKSURL != "" && !a.roles["core"] {
		src = authn.NewJWKSSource(a.cfg.JWKSURL, nil)
	} else {
		dir := a.cfg.KeysDir
		if dir == "" {
			dir = filepath.Join(a.cfg.DataDir, "keys")
		}
		keys, err := authn.LoadOrCreateKeys(dir)
		if err != nil {
			return fmt.Errorf("signing keys: %w", err)
		}
		a.keys, a.signer, src = keys, authn.NewSigner(keys), keys
	}
	a.verifier = authn.NewVerifier(src, core.Generations{Reg: a.reg}, authn.VerifierConfig{CacheTTL: a.cfg.AuthCacheTTL})
	return nil
}

// setupCore serves CoreService and makes sure an admin exists.
func (a *App) setupCore(ctx context.Context) error {
	svc := core.New(a.log, a.reg, a.signer, a.coreConfig(), a.provisioners...)
	generated, err := svc.EnsureAdmin(ctx, a.cfg.AdminPassword)
	if err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	if generated != "" {
		file := filepath.Join(a.cfg.DataDir, "admin-password")
		if err := os.WriteFile(file, []byte(generated+"\n"), 0o600); err != nil {
			return fmt.Errorf("write admin password: %w", err)
		}
		// Printed once, on the console only (not in structured logs).
		fmt.Fprintf(os.Stderr, "\n  Admin user: root\n  Password:   %s\n  (also saved to %s, mode 0600)\n\n", generated, file)
	}
	return a.mountCore(ctx, svc)
}

// mountCore serves svc over Connect/gRPC and REST (serve and function mode).
func (a *App) mountCore(ctx context.Context, svc *core.Service) error {
	a.api.Handle(corev1connect.NewCoreServiceHandler(svc, a.connectOpts...))
	a.grpcServices = append(a.grpcServices, corev1connect.CoreServiceName)
	if err := corev1grpc.RegisterCoreServiceHandlerServer(ctx, a.rest, svc); err != nil {
		return fmt.Errorf("register core REST: %w", err)
	}
	return nil
}

// coreConfig is the Core service configuration (serve and function mode).
func (a *App) coreConfig() core.Config {
	return core.Config{UserTokenTTL: a.cfg.UserTokenTTL, RefreshTokenTTL: a.cfg.RefreshTokenTTL, SignIn: a.cfg.Limits.SignIn, Metrics: a.metrics}
}

// registryCacheEntries maps the flag (0: no cache) to SQLiteConfig (0:
// default, negative: no cache).
func registryCacheEntries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
