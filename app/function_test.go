package app

import (
	"flag"
	"slices"
	"testing"

	"github.com/iotplatform/iotplatform/services/core"
)

func TestFunctionGroups_EveryProcedureHasOneNamedGroup(t *testing.T) {
	g := procedureGroups()
	if len(g["other"]) > 0 {
		t.Errorf("procedures without a group (give their REST path a group in coreRoute.group): %v", g["other"])
	}
	for _, name := range []string{"users", "devices", "sensors", "consumers"} {
		if len(g[name]) == 0 {
			t.Errorf("group %s is empty", name)
		}
	}
	n := 0
	for name, ps := range g {
		if name != "core" {
			n += len(ps)
		}
	}
	if n != len(g["core"]) || n != len(coreRoutes()) {
		t.Errorf("groups hold %d procedures, core %d, descriptor %d", n, len(g["core"]), len(coreRoutes()))
	}
	if !slices.Contains(g["sensors"], "CreateSensor") || !slices.Contains(g["users"], "SignIn") || !slices.Contains(g["consumers"], "GrantSensor") {
		t.Errorf("groups: %v", g)
	}
}

func TestMatchREST_PicksTheProcedureOfTheBinding(t *testing.T) {
	routes := coreRoutes()
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/api/users/signin", "SignIn"},
		{"GET", "/api/users/7", "GetUser"},
		{"GET", "/api/me", "GetCurrentUser"},
		{"GET", "/api/devices/3/sensors/4", "GetSensor"},
		{"POST", "/api/devices/3/sensors", "CreateSensor"},
		{"GET", "/api/devices/3/key", "GetDeviceKey"},
		{"DELETE", "/api/consumers/1/sensors/2", "RevokeSensor"},
		{"GET", "/api/devices/3/", "GetDevice"},
		{"GET", "/api/devices//sensors", ""},
		{"PUT", "/api/devices/3", ""},
	} {
		r, ok := matchREST(routes, tc.method, tc.path)
		if got := r.procedure; ok != (tc.want != "") || got != tc.want {
			t.Errorf("%s %s: %q %v, want %q", tc.method, tc.path, got, ok, tc.want)
		}
	}
}

func TestFunctionConfig_Validate(t *testing.T) {
	c := FunctionConfig{Group: "sensors", Procedures: "SignIn", Contract: ContractHTTP, PostgresDSN: "postgres://x", KeysDir: "/k", UserTokenTTL: 1}
	procs, err := c.Validate()
	if err != nil || !slices.Contains(procs, "SignIn") || !slices.Contains(procs, "CreateSensor") {
		t.Fatalf("%v %v", procs, err)
	}
	c.KeysDir, c.JWKSURL = "", "http://core/.well-known/jwks.json"
	if _, err := c.Validate(); err == nil {
		t.Fatal("SignIn without keys accepted")
	}
	c.Contract = "lambda"
	if _, err := c.Validate(); err == nil {
		t.Fatal("unknown contract accepted")
	}
}

// TestFunctionConfig_UserTokensShortLivedByDefault: a function serving
// SignIn/RefreshToken issues user tokens as short-lived as serve does (a
// stolen access token cannot be cut short by sign-out or refresh rotation).
func TestFunctionConfig_UserTokensShortLivedByDefault(t *testing.T) {
	t.Setenv("IOT_USER_TOKEN_TTL", "")
	var fc FunctionConfig
	fc.RegisterFlags(flag.NewFlagSet("function", flag.ContinueOnError))
	var c Config
	c.RegisterFlags(flag.NewFlagSet("serve", flag.ContinueOnError))
	if fc.UserTokenTTL != c.UserTokenTTL || fc.UserTokenTTL != core.DefaultUserTokenTTL {
		t.Fatalf("function user-token-ttl default %v, serve %v, core default %v: want all equal", fc.UserTokenTTL, c.UserTokenTTL, core.DefaultUserTokenTTL)
	}
}
