package ws

import (
	"flag"
	"testing"

	"github.com/iotplatform/iotplatform/internal/envflag/envflagtest"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	envflagtest.Refused[Flags](t,
		envflagtest.Bad{Flag: "ws-idle-timeout", Value: "0"},
	)
}

// TestFlags_EpollOnByDefault: epoll reads are the default and
// IOT_WS_EPOLL=false (or --ws-epoll=false) turns them off.
func TestFlags_EpollOnByDefault(t *testing.T) {
	for _, tc := range []struct {
		env  string
		args []string
		want bool
	}{{"", nil, true}, {"false", nil, false}, {"", []string{"--ws-epoll=false"}, false}} {
		t.Setenv("IOT_WS_EPOLL", tc.env)
		var f Flags
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		f.RegisterFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if f.Epoll != tc.want {
			t.Errorf("IOT_WS_EPOLL=%q %v: epoll %v, want %v", tc.env, tc.args, f.Epoll, tc.want)
		}
	}
}
