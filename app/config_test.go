package app

import (
	"flag"
	"strings"
	"testing"
)

func TestRoleSet(t *testing.T) {
	tests := []struct {
		roles string
		want  []Role
		err   bool
	}{
		{"all", []Role{RoleCore, RolePipeline, RoleIngest, RoleQuery}, false},
		{"core,query", []Role{RoleCore, RoleQuery}, false},
		{" ingest ", []Role{RoleIngest}, false},
		{"core,bogus", nil, true},
		{"", nil, true},
	}
	for _, tc := range tests {
		got, err := ParseRoles(tc.roles)
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
			if !got.Has(r) {
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
	if c.API.Addr != "127.0.0.1:9999" || c.DataDir != "/tmp/from-flag" {
		t.Fatalf("api=%q data=%q", c.API.Addr, c.DataDir)
	}
	if err := c.Validate(); err == nil {
		t.Fatal("a 5-character admin password must be refused")
	}
}

// TestConfig_UnparsableEnvRefusesToStartNamingTheVariable: IOT_* values that
// do not parse are refused, not silently replaced by the default.
func TestConfig_UnparsableEnvRefusesToStartNamingTheVariable(t *testing.T) {
	for env, val := range map[string]string{"IOT_MQTT_QUEUE": "lots", "IOT_INGEST_PUBLISH_TIMEOUT": "soon", "IOT_KAFKA_PARTITIONS": "6x",
		"IOT_SIGNIN_QUEUE": "many", "IOT_SIGNIN_WAIT": "a while", "IOT_INGEST_RATE": "fast", "IOT_KAFKA_TLS": "maybe", "IOT_WEBHOOK_ALLOW_NETS": "10.0.0.0/33"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			c, err := ParseConfig()
			if err != nil {
				t.Fatal(err)
			}
			err = c.Validate()
			if err == nil || !strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), val) {
				t.Fatalf("Validate with %s=%s: %v, want an error naming it", env, val, err)
			}
		})
	}
	t.Setenv("IOT_MQTT_QUEUE", "64")
	c, err := ParseConfig()
	if err != nil || c.Validate() != nil || c.Ingest.MQTT.Queue != 64 {
		t.Fatalf("IOT_MQTT_QUEUE=64: %v %v %d", err, c.Validate(), c.Ingest.MQTT.Queue)
	}
}

// TestConfig_RegistryCacheEntries: the registry's read cache size comes
// from IOT_REGISTRY_CACHE_ENTRIES (0 turns the cache off), a negative size
// is refused naming the variable.
func TestConfig_RegistryCacheEntries(t *testing.T) {
	t.Setenv("IOT_REGISTRY_CACHE_ENTRIES", "5000")
	c, err := ParseConfig()
	if err != nil || c.Validate() != nil || c.Registry.CacheEntries != 5000 {
		t.Fatalf("IOT_REGISTRY_CACHE_ENTRIES=5000: %v %v %d", err, c.Validate(), c.Registry.CacheEntries)
	}
	if registryCacheEntries(0) >= 0 || registryCacheEntries(5000) != 5000 {
		t.Fatal("0 must turn the cache off, not select the default")
	}
	c, _ = ParseConfig("--registry-cache-entries", "-1")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "IOT_REGISTRY_CACHE_ENTRIES") {
		t.Fatalf("Validate with -1 = %v, want an error naming the variable", err)
	}
}
