package core

import (
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// RegisterFlags binds the sign-in limiter's flags (`iotplatform serve
// --signin-*`, each with its IOT_SIGNIN_* variable).
func (c *SignInConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.Workers, "signin-workers", "IOT_SIGNIN_WORKERS", 0, "concurrent password hashes (argon2id, 19 MiB each); 0: the number of CPUs")
	envflag.Int(fs, &c.Queue, "signin-queue", "IOT_SIGNIN_QUEUE", 32, "sign-ins waiting for a hash worker; more are refused at once (503)")
	envflag.Duration(fs, &c.Wait, "signin-wait", "IOT_SIGNIN_WAIT", 2*time.Second, "how long a sign-in waits for a hash worker before 503 with Retry-After")
	envflag.Int(fs, &c.PerAddress, "signin-per-address", "IOT_SIGNIN_PER_ADDRESS", 4, "sign-ins one client address may have waiting or hashing at once; more are refused (429)")
	envflag.Int(fs, &c.AccountFree, "signin-account-free", "IOT_SIGNIN_ACCOUNT_FREE", 5, "failed sign-ins in a row per account before exponential backoff (429 with Retry-After)")
	envflag.Int(fs, &c.AddressFree, "signin-address-free", "IOT_SIGNIN_ADDRESS_FREE", 20, "failed sign-ins in a row per client address before exponential backoff")
	envflag.Duration(fs, &c.BackoffBase, "signin-backoff-base", "IOT_SIGNIN_BACKOFF_BASE", time.Second, "first sign-in backoff window, doubled by each further failure")
	envflag.Duration(fs, &c.BackoffMax, "signin-backoff-max", "IOT_SIGNIN_BACKOFF_MAX", time.Minute, "longest sign-in backoff window (never a permanent lockout)")
}

// Validate checks the sign-in flags.
func (c *SignInConfig) Validate() error {
	var errs []error
	for name, v := range map[string]int{"signin-workers": c.Workers, "signin-queue": c.Queue, "signin-per-address": c.PerAddress,
		"signin-account-free": c.AccountFree, "signin-address-free": c.AddressFree} {
		if v < 0 {
			errs = append(errs, envflag.Errorf(name, "must not be negative"))
		}
	}
	for name, d := range map[string]time.Duration{"signin-wait": c.Wait, "signin-backoff-base": c.BackoffBase, "signin-backoff-max": c.BackoffMax} {
		if d <= 0 {
			errs = append(errs, envflag.Errorf(name, "must be positive"))
		}
	}
	return errors.Join(errs...)
}
