package app

import (
	"slices"
	"testing"
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
