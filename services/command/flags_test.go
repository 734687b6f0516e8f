package command

import (
	"flag"
	"strings"
	"testing"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	for _, tc := range []struct{ flag, value, env string }{
		{"command-max-payload", "0", "IOT_COMMAND_MAX_PAYLOAD"},
		{"command-max-attributes", "2000000", "IOT_COMMAND_MAX_ATTRIBUTES"},
		{"command-max-pending", "0", "IOT_COMMAND_MAX_PENDING"},
		{"command-default-ttl", "0", "IOT_COMMAND_DEFAULT_TTL"},
		{"command-max-wait", "0", "IOT_COMMAND_MAX_WAIT"},
		{"command-poll-max-wait", "0", "IOT_COMMAND_POLL_MAX_WAIT"},
		{"command-poll-per-device", "0", "IOT_COMMAND_POLL_PER_DEVICE"},
		{"command-poll-total", "0", "IOT_COMMAND_POLL_TOTAL"},
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
