package app

import (
	"context"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/services/core"
)

// AuthConfig configures token signing and verification.
type AuthConfig struct {
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
func (c *AuthConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.CacheTTL, "auth-cache-ttl", "IOT_AUTH_CACHE_TTL", cache.TTL, "how long a verified token or device certificate is trusted before rotation/revocation is re-checked (at most 2s, the staleness bound, internal/cache.TTL)")
	envflag.String(fs, &c.KeysDir, "keys-dir", "IOT_KEYS_DIR", "", "directory of Ed25519 signing keys (*.pem); default <data-dir>/keys")
	envflag.String(fs, &c.JWKSURL, "jwks-url", "IOT_JWKS_URL", "", "verify tokens with keys from this JWKS URL (for processes without the core role)")
}

// Validate checks the auth flags.
func (c *AuthConfig) Validate() error {
	if c.CacheTTL < 0 || c.CacheTTL > cache.TTL {
		return envflag.Errorf("auth-cache-ttl", "must be between 0 and %s (the staleness bound)", cache.TTL)
	}
	return nil
}

// authParts is what the auth module provides: THE verifier, and the keys
// and signer where this process holds the private keys.
type authParts struct {
	keys     *authn.KeySet
	signer   *authn.Signer
	verifier *authn.Verifier
}

// initAuth loads (or creates) the signing keys, or uses a remote JWKS for
// processes without the core role, and builds THE verifier.
func (a *App) initAuth(context.Context) (authParts, error) {
	c := &a.cfg.Auth
	var p authParts
	var src authn.KeySource
	if c.JWKSURL != "" && !a.roles.Has(RoleCore) {
		src = authn.NewJWKSSource(c.JWKSURL, nil)
	} else {
		dir := c.KeysDir
		if dir == "" {
			dir = filepath.Join(a.cfg.DataDir, "keys")
		}
		keys, err := authn.LoadOrCreateKeys(dir)
		if err != nil {
			return p, fmt.Errorf("signing keys: %w", err)
		}
		p.keys, p.signer, src = keys, authn.NewSigner(keys), keys
	}
	p.verifier = authn.NewVerifier(src, core.Generations{Reg: a.reg}, authn.VerifierConfig{CacheTTL: c.CacheTTL})
	return p, nil
}
