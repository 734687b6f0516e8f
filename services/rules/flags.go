package rules

import (
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the command-line settings (`iotplatform serve`, each with its
// IOT_* variable) of rules, alerts, webhooks and retention (docs/RULES.md).
type Flags struct {
	WebhookBackoff     time.Duration
	WebhookMaxBackoff  time.Duration
	WebhookMaxAttempts int
	WebhookTimeout     time.Duration
	// WebhookAllowNets lists internal networks webhooks may reach
	// (comma-separated CIDR prefixes or addresses; default none).
	WebhookAllowNets string
	// RawRetention is how long raw readings are kept by default (0: forever).
	RawRetention time.Duration
	// MinuteRetention is how long per-minute aggregates are kept (0: forever).
	MinuteRetention time.Duration
	// RetentionInterval is how often expired readings are looked for.
	RetentionInterval time.Duration
}

// RegisterFlags binds the rules flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Duration(fs, &c.WebhookBackoff, "webhook-backoff", "IOT_WEBHOOK_BACKOFF", time.Second, "wait after a failed webhook delivery; doubles with every further failure")
	envflag.Duration(fs, &c.WebhookMaxBackoff, "webhook-max-backoff", "IOT_WEBHOOK_MAX_BACKOFF", 5*time.Minute, "longest wait between webhook delivery attempts")
	envflag.Int(fs, &c.WebhookMaxAttempts, "webhook-max-attempts", "IOT_WEBHOOK_MAX_ATTEMPTS", 10, "webhook delivery attempts before giving up")
	envflag.Duration(fs, &c.WebhookTimeout, "webhook-timeout", "IOT_WEBHOOK_TIMEOUT", 10*time.Second, "time limit of one webhook delivery attempt")
	envflag.String(fs, &c.WebhookAllowNets, "webhook-allow-nets", "IOT_WEBHOOK_ALLOW_NETS", "", "internal networks webhooks may reach, as comma-separated CIDR prefixes or addresses (e.g. 10.1.0.0/16,127.0.0.1); by default webhooks reach public addresses only")
	envflag.Duration(fs, &c.RawRetention, "retention-raw", "IOT_RETENTION_RAW", 0, "how long raw readings are kept unless a sensor overrides it (0: forever)")
	envflag.Duration(fs, &c.MinuteRetention, "retention-minute-rollups", "IOT_RETENTION_MINUTE_ROLLUPS", 0, "how long per-minute aggregates are kept before they are folded into per-hour ones (0: forever; per-hour aggregates are kept forever)")
	envflag.Duration(fs, &c.RetentionInterval, "retention-interval", "IOT_RETENTION_INTERVAL", time.Minute, "how often expired readings are deleted")
}

// Validate checks the rules flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.WebhookBackoff <= 0 || c.WebhookMaxBackoff < c.WebhookBackoff {
		errs = append(errs, envflag.Errorf("webhook-backoff", "must be positive and at most --webhook-max-backoff"))
	}
	if c.WebhookMaxAttempts < 1 {
		errs = append(errs, envflag.Errorf("webhook-max-attempts", "must be at least 1"))
	}
	if c.WebhookTimeout <= 0 {
		errs = append(errs, envflag.Errorf("webhook-timeout", "must be positive"))
	}
	if _, err := ParseAllowNets(c.WebhookAllowNets); err != nil {
		errs = append(errs, envflag.Errorf("webhook-allow-nets", "%v", err))
	}
	if c.RawRetention < 0 || (c.RawRetention > 0 && c.RawRetention < time.Minute) {
		errs = append(errs, envflag.Errorf("retention-raw", "must be 0 (forever) or at least 1m"))
	}
	if c.MinuteRetention < 0 || (c.MinuteRetention > 0 && c.MinuteRetention < time.Hour) {
		errs = append(errs, envflag.Errorf("retention-minute-rollups", "must be 0 (forever) or at least 1h"))
	}
	if c.RetentionInterval <= 0 {
		errs = append(errs, envflag.Errorf("retention-interval", "must be positive"))
	}
	return errors.Join(errs...)
}
