package registrysql

import (
	"flag"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the registry's command-line settings (`iotplatform serve
// --postgres-dsn`, --registry-cache-entries, each with its IOT_*
// variable): PostgreSQL when a DSN is set, else SQLite in the data dir.
type Flags struct {
	PostgresDSN string
	// CacheEntries bounds the embedded registry's read cache (an LRU, ~0.7
	// KB per device entry); 0 disables it.
	CacheEntries int
}

// RegisterFlags binds the registry flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.PostgresDSN, "postgres-dsn", "IOT_POSTGRES_DSN", "", "PostgreSQL DSN for the registry; empty uses SQLite in the data dir")
	envflag.Int(fs, &c.CacheEntries, "registry-cache-entries", "IOT_REGISTRY_CACHE_ENTRIES", DefaultCacheEntries, "rows the embedded (SQLite) registry keeps in its LRU read cache, about 0.7 KB each; 0 disables it (entries live 2s at most, the staleness bound of internal/cache)")
}

// Validate checks the registry flags.
func (c *Flags) Validate() error {
	if c.CacheEntries < 0 {
		return envflag.Errorf("registry-cache-entries", "must not be negative")
	}
	return nil
}
