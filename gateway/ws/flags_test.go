package ws

import (
	"flag"
	"strings"
	"testing"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	for _, tc := range []struct{ flag, value, env string }{
		{"ws-idle-timeout", "0", "IOT_WS_IDLE_TIMEOUT"},
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
