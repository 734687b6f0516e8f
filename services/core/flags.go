package core

import (
	"errors"
	"flag"
	"os"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the command-line settings (`iotplatform serve`, each with its
// IOT_* variable) of the core role.
type Flags struct {
	// AdminPassword seeds the `root` admin on first start (env only:
	// IOT_ADMIN_PASSWORD); empty generates a random one.
	AdminPassword string
	// UserTokenTTL is the lifetime of sign-in tokens.
	UserTokenTTL time.Duration
	// RefreshTokenTTL is how long a session can be refreshed after sign-in.
	RefreshTokenTTL time.Duration
}

// RegisterFlags binds the core flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.UserTokenTTL, "user-token-ttl", "IOT_USER_TOKEN_TTL", 15*time.Minute, "lifetime of user tokens from SignIn and RefreshToken")
	envflag.Duration(fs, &c.RefreshTokenTTL, "refresh-token-ttl", "IOT_REFRESH_TOKEN_TTL", 7*24*time.Hour, "how long after sign-in a session can be refreshed without signing in again")
	c.AdminPassword = os.Getenv("IOT_ADMIN_PASSWORD")
}

// Validate checks the core flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.AdminPassword != "" && len(c.AdminPassword) < 8 {
		errs = append(errs, errors.New("IOT_ADMIN_PASSWORD must have at least 8 characters"))
	}
	if c.UserTokenTTL <= 0 {
		errs = append(errs, envflag.Errorf("user-token-ttl", "must be positive"))
	}
	if c.RefreshTokenTTL <= 0 {
		errs = append(errs, envflag.Errorf("refresh-token-ttl", "must be positive"))
	}
	return errors.Join(errs...)
}
