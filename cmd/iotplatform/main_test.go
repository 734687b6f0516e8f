package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

func TestRun_Commands(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run([]string{"version"}, &out, &errOut); err != nil || !strings.HasPrefix(out.String(), "iotplatform ") {
		t.Fatalf("version: %q %v", out.String(), err)
	}
	if err := run([]string{"frobnicate"}, &out, &errOut); err == nil {
		t.Fatal("unknown command accepted")
	}
	if err := run(nil, &out, &errOut); err == nil {
		t.Fatal("missing command accepted")
	}
	errOut.Reset()
	if err := run([]string{"serve", "-h"}, &out, &errOut); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("serve -h: %v", err)
	}
	for _, f := range []string{"-api-addr", "IOT_API_ADDR", "-http-addr", "-ws-addr", "-mqtt-addr", "-data-dir", "-postgres-dsn", "-kafka-brokers", "-opensearch-url", "-roles"} {
		if !strings.Contains(errOut.String(), f) {
			t.Errorf("serve -h lacks %s", f)
		}
	}
	if err := run([]string{"serve", "--roles", "nonsense"}, &out, &errOut); err == nil || !strings.Contains(err.Error(), "unknown role") {
		t.Fatalf("bad role: %v", err)
	}
	if err := run([]string{"serve", "--log-format", "xml"}, &out, &errOut); err == nil {
		t.Fatal("bad log format accepted")
	}
}
