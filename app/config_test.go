package app

import (
	"flag"
	"testing"
)

func TestRoleSet(t *testing.T) {
	tests := []struct {
		roles string
		want  []string
		err   bool
	}{
		{"all", []string{"core", "pipeline", "ingest", "query"}, false},
		{"core,query", []string{"core", "query"}, false},
		{" ingest ", []string{"ingest"}, false},
		{"core,bogus", nil, true},
		{"", nil, true},
	}
	for _, tc := range tests {
		c := Config{Roles: tc.roles}
		got, err := c.RoleSet()
		if tc.err {
			if err == nil {
				t.Errorf("RoleSet(%q) accepted", tc.roles)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("RoleSet(%q) = %v, %v", tc.roles, got, err)
			continue
		}
		for _, r := range tc.want {
			if !got[r] {
				t.Errorf("RoleSet(%q) lacks %s", tc.roles, r)
			}
		}
	}
}

func TestFlagsTakeEnvDefaultsAndFlagsWin(t *testing.T) {
	t.Setenv("IOT_API_ADDR", "127.0.0.1:9999")
	t.Setenv("IOT_DATA_DIR", "/tmp/from-env")
	t.Setenv("IOT_ADMIN_PASSWORD", "short")
	var c Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if err := fs.Parse([]string{"--data-dir", "/tmp/from-flag"}); err != nil {
		t.Fatal(err)
	}
	if c.APIAddr != "127.0.0.1:9999" || c.DataDir != "/tmp/from-flag" {
		t.Fatalf("api=%q data=%q", c.APIAddr, c.DataDir)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("a 5-character admin password must be refused")
	}
}
