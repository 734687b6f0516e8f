package mqtt

import (
	"testing"

	"github.com/iotplatform/iotplatform/internal/envflag/envflagtest"
)

// TestFlags_DefaultsValidAndBadValuesNamed: the defaults pass, and each
// bad value is refused with a message naming the flag and its variable.
func TestFlags_DefaultsValidAndBadValuesNamed(t *testing.T) {
	envflagtest.Refused[Flags](t,
		envflagtest.Bad{Flag: "mqtt-queue", Value: "0"},
		envflagtest.Bad{Flag: "mqtt-outbound-queue", Value: "0"},
		envflagtest.Bad{Flag: "mqtt-read-buffer", Value: "63"},
	)
}
