package app

import (
	"strings"
	"testing"
)

func TestConfig_EmbeddedBusIsValidated(t *testing.T) {
	t.Setenv("IOT_EMBEDDED_BUS", "memory")
	c, err := ParseConfig()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "IOT_EMBEDDED_BUS") {
		t.Fatalf("Validate with IOT_EMBEDDED_BUS=memory = %v, want an error naming the variable", err)
	}
	c, err = ParseConfig("--embedded-bus", "direct", "--wal-max-backlog", "0")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "IOT_WAL_MAX_BACKLOG") {
		t.Fatalf("Validate with --wal-max-backlog 0 = %v, want an error naming the variable", err)
	}
}

func TestConfig_EmbeddedBusDefaultsToTheLog(t *testing.T) {
	c, err := ParseConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.Bus.EmbeddedBus != "wal" || c.Bus.WALMaxBacklog != 500_000 {
		t.Fatalf("defaults: embedded bus %q, backlog %d", c.Bus.EmbeddedBus, c.Bus.WALMaxBacklog)
	}
}
