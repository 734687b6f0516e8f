package app

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/services/core"
)

// AuthConfig configures token signing and verification: its flags are
// declared in internal/authn (Flags).
type AuthConfig = authn.Flags

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
