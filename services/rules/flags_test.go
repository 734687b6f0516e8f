package rules

import (
	"testing"

	"github.com/iotplatform/iotplatform/internal/envflag/envflagtest"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	envflagtest.Refused[Flags](t,
		envflagtest.Bad{Flag: "webhook-backoff", Value: "0"},
		envflagtest.Bad{Flag: "webhook-max-attempts", Value: "0"},
		envflagtest.Bad{Flag: "webhook-timeout", Value: "0"},
		envflagtest.Bad{Flag: "webhook-allow-nets", Value: "nonsense"},
		envflagtest.Bad{Flag: "retention-raw", Value: "30s"},
		envflagtest.Bad{Flag: "retention-minute-rollups", Value: "30m"},
		envflagtest.Bad{Flag: "retention-interval", Value: "0"},
	)
}
