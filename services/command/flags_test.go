package command

import (
	"testing"

	"github.com/iotplatform/iotplatform/internal/envflag/envflagtest"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	envflagtest.Refused[Flags](t,
		envflagtest.Bad{Flag: "command-max-payload", Value: "0"},
		envflagtest.Bad{Flag: "command-max-attributes", Value: "2000000"},
		envflagtest.Bad{Flag: "command-max-pending", Value: "0"},
		envflagtest.Bad{Flag: "command-default-ttl", Value: "0"},
		envflagtest.Bad{Flag: "command-max-wait", Value: "0"},
		envflagtest.Bad{Flag: "command-poll-max-wait", Value: "0"},
		envflagtest.Bad{Flag: "command-poll-per-device", Value: "0"},
		envflagtest.Bad{Flag: "command-poll-total", Value: "0"},
	)
}
