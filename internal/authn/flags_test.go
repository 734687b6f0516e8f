package authn

import (
	"testing"

	"github.com/iotplatform/iotplatform/internal/envflag/envflagtest"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	envflagtest.Refused[Flags](t,
		envflagtest.Bad{Flag: "auth-cache-ttl", Value: "3s"},
		envflagtest.Bad{Flag: "auth-cache-ttl", Value: "-1s"},
	)
}
