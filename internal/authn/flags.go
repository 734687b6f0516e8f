package authn

import (
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the command-line settings (`iotplatform serve`, each with its
// IOT_* variable) of token signing and verification.
type Flags struct {
	// KeysDir holds the Ed25519 signing keys (default <data-dir>/keys).
	KeysDir string
	// JWKSURL makes processes without the core role verify against Core's
	// published keys instead of local key files.
	JWKSURL string
	// CacheTTL bounds how long a verified token is trusted before its
	// rotation/revocation state is re-read: the staleness bound.
	CacheTTL time.Duration
}

// RegisterFlags binds the auth flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.CacheTTL, "auth-cache-ttl", "IOT_AUTH_CACHE_TTL", cache.TTL, "how long a verified token or device certificate is trusted before rotation/revocation is re-checked (at most 2s, the staleness bound, internal/cache.TTL)")
	envflag.String(fs, &c.KeysDir, "keys-dir", "IOT_KEYS_DIR", "", "directory of Ed25519 signing keys (*.pem); default <data-dir>/keys")
	envflag.String(fs, &c.JWKSURL, "jwks-url", "IOT_JWKS_URL", "", "verify tokens with keys from this JWKS URL (for processes without the core role)")
}

// Validate checks the auth flags.
func (c *Flags) Validate() error {
	if c.CacheTTL < 0 || c.CacheTTL > cache.TTL {
		return envflag.Errorf("auth-cache-ttl", "must be between 0 and %s (the staleness bound)", cache.TTL)
	}
	return nil
}
