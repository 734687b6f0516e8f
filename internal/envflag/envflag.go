// Package envflag binds command-line flags whose defaults come from IOT_*
// environment variables (a flag on the command line wins). A variable that
// does not parse is remembered, not replaced by the default: Errors returns
// it so the process refuses to start naming the variable.
//
// Each package or module that owns settings registers its own flags with
// these functions in its Config's RegisterFlags (docs/ARCHITECTURE.md).
package envflag

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// EnvName is the environment variable of a serve flag: IOT_ and the flag's
// name in upper case with underscores (api-max-body → IOT_API_MAX_BODY).
func EnvName(flagName string) string {
	return "IOT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Name is how messages refer to a serve flag: both spellings a user may
// have used, e.g. "--api-max-body (IOT_API_MAX_BODY)".
func Name(flagName string) string { return "--" + flagName + " (" + EnvName(flagName) + ")" }

// Errorf is an error about a flag's value that names the flag and its
// variable: Errorf("mqtt-queue", "must be positive").
func Errorf(flagName, format string, args ...any) error {
	return fmt.Errorf("%s %s", Name(flagName), fmt.Sprintf(format, args...))
}

// String binds a string flag with the default taken from env when set.
func String(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		def = v
	}
	fs.StringVar(p, name, def, usage+" ($"+env+")")
}

// Duration binds a time.Duration flag (env: a Go duration such as 5s).
func Duration(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if d, err := time.ParseDuration(v); err == nil {
			def = d
		} else {
			remember(fs, env, v, "not a duration (e.g. 5s, 2m)")
		}
	}
	fs.DurationVar(p, name, def, usage+" ($"+env+")")
}

// Float64 binds a float64 flag.
func Float64(fs *flag.FlagSet, p *float64, name, env string, def float64, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			def = f
		} else {
			remember(fs, env, v, "not a number")
		}
	}
	fs.Float64Var(p, name, def, usage+" ($"+env+")")
}

// Bool binds a bool flag (env: anything strconv.ParseBool accepts).
func Bool(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if b, err := strconv.ParseBool(v); err == nil {
			def = b
		} else {
			remember(fs, env, v, "want true or false")
		}
	}
	fs.BoolVar(p, name, def, usage+" ($"+env+")")
}

// Int binds an int flag.
func Int(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	if v, ok := os.LookupEnv(env); ok {
		if n, err := strconv.Atoi(v); err == nil {
			def = n
		} else {
			remember(fs, env, v, "not an integer")
		}
	}
	fs.IntVar(p, name, def, usage+" ($"+env+")")
}

// bad collects the variables that did not parse, per flag set, until
// Errors takes them.
var bad struct {
	sync.Mutex
	m map[*flag.FlagSet][]error
}

func remember(fs *flag.FlagSet, env, value, want string) {
	bad.Lock()
	defer bad.Unlock()
	if bad.m == nil {
		bad.m = map[*flag.FlagSet][]error{}
	}
	bad.m[fs] = append(bad.m[fs], fmt.Errorf("%s=%q: %s", env, value, want))
}

// Errors returns (and forgets) the environment values bound to fs that did
// not parse, each naming its variable; nil when all parsed.
func Errors(fs *flag.FlagSet) error {
	bad.Lock()
	defer bad.Unlock()
	errs := bad.m[fs]
	delete(bad.m, fs)
	return errors.Join(errs...)
}
