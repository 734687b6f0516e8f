// Package envflagtest checks a package's flag group the way every group is
// held to (docs/ARCHITECTURE.md): the defaults pass Validate, and each bad
// value is refused with a message naming the flag and its IOT_* variable.
package envflagtest

import (
	"flag"
	"strings"
	"testing"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags is a package's flag group (a *Flags with RegisterFlags/Validate).
type Flags interface {
	RegisterFlags(fs *flag.FlagSet)
	Validate() error
}

// Bad is one flag value Validate must refuse.
type Bad struct{ Flag, Value string }

// Refused checks, on a fresh C for each case, that the defaults validate and
// that setting b.Flag to b.Value makes Validate name the flag and variable.
func Refused[C any, P interface {
	*C
	Flags
}](t *testing.T, bad ...Bad) {
	t.Helper()
	for _, b := range bad {
		var c C
		fs := flag.NewFlagSet("serve", flag.ContinueOnError)
		P(&c).RegisterFlags(fs)
		if err := P(&c).Validate(); err != nil {
			t.Fatalf("defaults: %v", err)
		}
		if err := fs.Set(b.Flag, b.Value); err != nil {
			t.Fatal(err)
		}
		env := envflag.EnvName(b.Flag)
		err := P(&c).Validate()
		if err == nil || !strings.Contains(err.Error(), b.Flag) || !strings.Contains(err.Error(), env) {
			t.Errorf("--%s=%s: got %v, want an error naming --%s and %s", b.Flag, b.Value, err, b.Flag, env)
		}
	}
}
