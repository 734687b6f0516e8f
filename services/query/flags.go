package query

import (
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the command-line settings (`iotplatform serve`, each with its
// IOT_* variable) of the query role (owned by the storage work).
type Flags struct {
	// AuthCacheTTL bounds how long grants and ownership are cached (≤ 5s).
	AuthCacheTTL time.Duration
	// PollInterval is how often Subscribe polls the store when this process
	// does not run the pipeline (its writes are then not seen in-process).
	PollInterval time.Duration
}

// RegisterFlags binds the query flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.AuthCacheTTL, "query-auth-cache-ttl", "IOT_QUERY_AUTH_CACHE_TTL", cache.TTL, "how long sensor ownership and consumer grants are cached by the query role (at most 2s, the staleness bound, internal/cache.TTL): the bound on revocation")
	envflag.Duration(fs, &c.PollInterval, "query-poll-interval", "IOT_QUERY_POLL_INTERVAL", time.Second, "Subscribe poll interval when the pipeline runs in another process")
}

// Validate checks the query flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.AuthCacheTTL > cache.TTL || c.AuthCacheTTL < 0 {
		errs = append(errs, envflag.Errorf("query-auth-cache-ttl", "must be between 0 and %s (the staleness bound)", cache.TTL))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, envflag.Errorf("query-poll-interval", "must be positive"))
	}
	return errors.Join(errs...)
}
