package app

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

// RegistryConfig selects the metadata registry: SQLite in the data dir, or
// PostgreSQL. Its flags are declared in registrysql (Flags).
type RegistryConfig = registrysql.Flags

// initRegistry opens PostgreSQL when a DSN is given, else SQLite in the data dir.
func (a *App) initRegistry(ctx context.Context) (registry.Registry, error) {
	if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	c := &a.cfg.Registry
	var reg registry.Registry
	if c.PostgresDSN != "" {
		db, err := registrysql.OpenPostgres(ctx, c.PostgresDSN)
		if err != nil {
			return nil, fmt.Errorf("open registry: %w", err)
		}
		reg = db
		a.log.Info("registry", "backend", "postgres")
	} else {
		path := filepath.Join(a.cfg.DataDir, "registry.db")
		db, err := registrysql.OpenSQLiteConfig(ctx, path, registrysql.SQLiteConfig{Log: a.log.With("component", "registry"), CacheEntries: registryCacheEntries(c.CacheEntries)})
		a.log.Info("registry", "backend", "sqlite", "path", path)
		if err != nil {
			return nil, fmt.Errorf("open registry: %w", err)
		}
		reg = db
		a.registerWAL("registry", db)
	}
	a.onClose(reg.Close)
	a.readyChecks["registry"] = reg.Ping
	return reg, nil
}

// registryCacheEntries maps the flag (0: no cache) to SQLiteConfig (0:
// default, negative: no cache).
func registryCacheEntries(n int) int {
	if n == 0 {
		return -1
	}
	return n
}
