package app

import (
	"flag"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
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
	if fc.UserTokenTTL != c.Core.UserTokenTTL || fc.UserTokenTTL != core.DefaultUserTokenTTL {
		t.Fatalf("function user-token-ttl default %v, serve %v, core default %v: want all equal", fc.UserTokenTTL, c.Core.UserTokenTTL, core.DefaultUserTokenTTL)
	}
}

// TestFunctionConfig_UnparsableEnvRefusesToStart: function mode refuses
// IOT_* values that do not parse, naming the variable, like serve does.
func TestFunctionConfig_UnparsableEnvRefusesToStart(t *testing.T) {
	for env, val := range map[string]string{"IOT_USER_TOKEN_TTL": "soon", "IOT_AUTH_CACHE_TTL": "5 s"} {
		t.Run(env, func(t *testing.T) {
			t.Setenv(env, val)
			var fc FunctionConfig
			fc.RegisterFlags(flag.NewFlagSet("function", flag.ContinueOnError))
			fc.Procedures, fc.PostgresDSN, fc.JWKSURL = "GetDevice", "postgres://x", "http://core/jwks"
			_, err := fc.Validate()
			if err == nil || !strings.Contains(err.Error(), env) || !strings.Contains(err.Error(), val) {
				t.Fatalf("Validate with %s=%q: %v, want an error naming it", env, val, err)
			}
		})
	}
}

// TestFunctionFilter_MethodOverrideCannotReachAnotherProcedure: the REST
// transcoder honours X-HTTP-Method-Override on form-encoded POSTs, so a
// CreateDevice-only function must not let `POST /api/devices` with
// `X-HTTP-Method-Override: GET` through to ListDevices.
func TestFunctionFilter_MethodOverrideCannotReachAnotherProcedure(t *testing.T) {
	a := &App{fn: &functionSpec{procedures: []string{"CreateDevice"}}}
	reached := 0
	h := a.functionFilter(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached++ }))
	do := func(override, ct string) int {
		r := httptest.NewRequest(http.MethodPost, "/api/devices", strings.NewReader("name=x"))
		r.Header.Set("Content-Type", ct)
		if override != "" {
			r.Header.Set("X-HTTP-Method-Override", override)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	if code := do("GET", "application/x-www-form-urlencoded"); code != http.StatusNotFound || reached != 0 {
		t.Fatalf("POST /api/devices overridden to GET (ListDevices, not served): %d, reached the handler %d times; want 404", code, reached)
	}
	if code := do("get", "application/x-www-form-urlencoded; charset=utf-8"); code != http.StatusNotFound || reached != 0 {
		t.Fatalf("lowercase override with charset: %d, reached %d; want 404", code, reached)
	}
	do("", "application/json")
	do("GET", "application/json") // the transcoder ignores the override here: still CreateDevice
	if reached != 2 {
		t.Fatalf("CreateDevice requests reached the handler %d times, want 2", reached)
	}
}
