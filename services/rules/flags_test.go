package rules

import (
	"flag"
	"strings"
	"testing"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	for _, tc := range []struct{ flag, value, env string }{
		{"webhook-backoff", "0", "IOT_WEBHOOK_BACKOFF"},
		{"webhook-max-attempts", "0", "IOT_WEBHOOK_MAX_ATTEMPTS"},
		{"webhook-timeout", "0", "IOT_WEBHOOK_TIMEOUT"},
		{"webhook-allow-nets", "nonsense", "IOT_WEBHOOK_ALLOW_NETS"},
		{"retention-raw", "30s", "IOT_RETENTION_RAW"},
		{"retention-minute-rollups", "30m", "IOT_RETENTION_MINUTE_ROLLUPS"},
		{"retention-interval", "0", "IOT_RETENTION_INTERVAL"},
	} {
		var c Flags
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		c.RegisterFlags(fs)
		if err := c.Validate(); err != nil {
			t.Fatalf("defaults: %v", err)
		}
		if err := fs.Set(tc.flag, tc.value); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.flag) || !strings.Contains(err.Error(), tc.env) {
			t.Errorf("--%s=%s: got %v, want an error naming --%s and %s", tc.flag, tc.value, err, tc.flag, tc.env)
		}
	}
}
