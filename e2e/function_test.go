package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fnPlatform addresses a function process with the same REST helpers as a
// full server.
func fnPlatform(t *testing.T, addr string) *Platform { return &Platform{t: t, API: addr} }

// startFunction runs `iotplatform function` with args (and env) on a free
// port given as $PORT, as Cloud Run and Knative do.
func startFunction(t *testing.T, name string, args, env []string) *Platform {
	t.Helper()
	addr := freeAddrs(t, 1)[0]
	port := addr[strings.LastIndex(addr, ":")+1:]
	startProc(t, name, binary, append([]string{"function", "--log-format", "text"}, args...),
		append([]string{"PORT=" + port}, env...), "http://"+addr+"/readyz")
	return fnPlatform(t, addr)
}

func connectCall(t *testing.T, base, procedure, token string, body any) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", "http://"+base+"/iot.core.v1.CoreService/"+procedure, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func sameJSON(t *testing.T, what string, a, b []byte) {
	t.Helper()
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		t.Fatalf("%s: not JSON: %s / %s", what, a, b)
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	if !bytes.Equal(ja, jb) {
		t.Errorf("%s differs:\nfull server: %s\nfunction:    %s", what, ja, jb)
	}
}

func tamper(tok string) string {
	i := strings.LastIndex(tok, ".")
	sig := []byte(tok[i+1:])
	if sig[2] == 'A' {
		sig[2] = 'B'
	} else {
		sig[2] = 'A'
	}
	return tok[:i+1] + string(sig)
}

func TestFunction_KnativeContractAnswersLikeTheFullServer(t *testing.T) {
	dsn := freshPostgres(t)
	keys := filepath.Join(t.TempDir(), "keys")
	full := Start(t, Options{Args: []string{"--postgres-dsn", dsn, "--keys-dir", keys}})
	admin := full.AdminToken()
	dev := full.NewDevice(admin, "fn-dev", "double")
	jwks := "http://" + full.API + "/.well-known/jwks.json"

	// A signing function (users group, with the keys) and a verify-only one
	// (by JWKS, no keys at all).
	users := startFunction(t, "fn-users", []string{"--group", "users", "--keys-dir", keys}, []string{"IOT_POSTGRES_DSN=" + dsn})
	devices := startFunction(t, "fn-devices", []string{"--procedures", "GetDevice,GetSensor,CreateSensor", "--postgres-dsn", dsn, "--jwks-url", jwks}, nil)

	// SignIn on the function gives a token the full server accepts, and the
	// other way round.
	fnTok := users.SignIn("root", full.AdminPassword)
	if r := full.Do("GET", "/api/me", fnTok, nil); r.Status != 200 {
		t.Fatalf("token from the SignIn function refused by the full server: %d %s", r.Status, r.Body)
	}
	for _, path := range []string{"/api/devices/" + dev.ID, "/api/devices/" + dev.ID + "/sensors/" + dev.SensorID} {
		a, b := full.Do("GET", path, admin, nil), devices.Do("GET", path, fnTok, nil)
		if a.Status != 200 || b.Status != 200 {
			t.Fatalf("GET %s: full %d %s, function %d %s", path, a.Status, a.Body, b.Status, b.Body)
		}
		sameJSON(t, "REST GET "+path, a.Body, b.Body)
	}
	sa, ba := connectCall(t, full.API, "GetDevice", admin, map[string]string{"id": dev.ID})
	sb, bb := connectCall(t, devices.API, "GetDevice", fnTok, map[string]string{"id": dev.ID})
	if sa != 200 || sb != 200 {
		t.Fatalf("Connect GetDevice: full %d %s, function %d %s", sa, ba, sb, bb)
	}
	sameJSON(t, "Connect GetDevice", ba, bb)

	// Sensors-Add in function mode, read back through the full server.
	s := devices.Do("POST", "/api/devices/"+dev.ID+"/sensors", fnTok, map[string]string{"name": "added-by-fn", "mapping": `{"type":"long"}`})
	if s.Status != 200 || s.Str("id") == "" {
		t.Fatalf("CreateSensor on the function: %d %s", s.Status, s.Body)
	}
	if r := full.Do("GET", "/api/devices/"+dev.ID+"/sensors/"+s.Str("id"), admin, nil); r.Status != 200 {
		t.Fatalf("sensor created by the function not visible to the full server: %d %s", r.Status, r.Body)
	}

	// Procedures it does not serve: a clear 404 before authentication.
	for _, tc := range []struct{ method, path, want string }{
		{"POST", "/api/devices", "CreateDevice"},
		{"GET", "/api/devices", "ListDevices"},
		{"DELETE", "/api/devices/" + dev.ID, "DeleteDevice"},
		{"GET", "/api/nothing/here", "no Core procedure"},
	} {
		r := devices.Do(tc.method, tc.path, "", nil)
		if r.Status != 404 || r.Str("code") != "not_found" || !strings.Contains(r.Str("message"), tc.want) || !strings.Contains(r.Str("message"), "GetDevice") {
			t.Errorf("%s %s on the GetDevice function: %d %s (want 404 naming %s and what it serves)", tc.method, tc.path, r.Status, r.Body, tc.want)
		}
	}
	if st, b := connectCall(t, devices.API, "DeleteDevice", fnTok, map[string]string{"id": dev.ID}); st != 404 || !strings.Contains(string(b), "DeleteDevice is not served") {
		t.Errorf("Connect DeleteDevice on the GetDevice function: %d %s", st, b)
	}
	if r := full.Do("GET", "/api/devices/"+dev.ID, admin, nil); r.Status != 200 {
		t.Fatalf("device gone after refused DeleteDevice: %d", r.Status)
	}

	// Bad tokens: refused like the full server does.
	for name, tok := range map[string]string{"garbage": "not-a-jwt", "tampered": tamper(fnTok), "device token": dev.Token} {
		a, b := full.Do("GET", "/api/devices/"+dev.ID, tok, nil), devices.Do("GET", "/api/devices/"+dev.ID, tok, nil)
		if b.Status != a.Status || (b.Status != 401 && b.Status != 403) {
			t.Errorf("%s: function %d %s, full server %d", name, b.Status, b.Body, a.Status)
		}
	}
	if r := devices.Do("GET", "/api/devices/"+dev.ID, "", nil); r.Status != 401 {
		t.Errorf("no token: %d %s", r.Status, r.Body)
	}
}

// owRun posts one activation to an OpenWhisk action and decodes the result.
func owRun(t *testing.T, addr string, value map[string]any) (status int, res struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"value": value, "namespace": "guest", "action_name": "/guest/iot/fn", "activation_id": randHex(8)})
	resp, err := http.Post("http://"+addr+"/run", "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("/run answer: %v", err)
	}
	return resp.StatusCode, res
}

func TestFunction_OpenWhiskActionInitAndRunWithWebActionParameters(t *testing.T) {
	dsn := freshPostgres(t)
	keys := filepath.Join(t.TempDir(), "keys")
	full := Start(t, Options{Args: []string{"--postgres-dsn", dsn, "--keys-dir", keys}})
	admin := full.AdminToken()
	dev := full.NewDevice(admin, "ow-dev", "double")

	addr := freeAddrs(t, 1)[0]
	startProc(t, "fn-openwhisk", binary, []string{"function", "--contract", "openwhisk", "--addr", addr, "--log-format", "text",
		"--procedures", "SignIn,GetDevice", "--postgres-dsn", dsn, "--keys-dir", keys}, nil, "http://"+addr+"/healthz")

	resp, err := http.Post("http://"+addr+"/init", "application/json", strings.NewReader(`{"value":{"name":"fn","main":"main","binary":false,"code":""}}`))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/init: %v %v", resp, err)
	}
	resp.Body.Close()
	if resp, _ = http.Post("http://"+addr+"/init", "application/json", strings.NewReader(`{"value":{}}`)); resp.StatusCode != 403 {
		t.Errorf("second /init: %d, want 403", resp.StatusCode)
	}

	// Raw web action: __ow_body is base64 for JSON.
	signin, _ := json.Marshal(map[string]string{"username": "root", "password": full.AdminPassword})
	st, res := owRun(t, addr, map[string]any{"__ow_method": "post", "__ow_path": "/api/users/signin",
		"__ow_headers": map[string]string{"content-type": "application/json"}, "__ow_body": base64.StdEncoding.EncodeToString(signin)})
	var tok struct{ Token string }
	if st != 200 || res.StatusCode != 200 || json.Unmarshal([]byte(res.Body), &tok) != nil || tok.Token == "" {
		t.Fatalf("SignIn through /run: %d %+v", st, res)
	}
	if r := full.Do("GET", "/api/me", tok.Token, nil); r.Status != 200 {
		t.Fatalf("token from the OpenWhisk action refused by the full server: %d", r.Status)
	}
	// Non-raw web action: the JSON body's fields arrive as parameters.
	if _, res := owRun(t, addr, map[string]any{"__ow_method": "post", "__ow_path": "/api/users/signin", "__ow_headers": map[string]string{},
		"username": "root", "password": full.AdminPassword}); res.StatusCode != 200 || !strings.Contains(res.Body, `"token"`) {
		t.Fatalf("SignIn with merged parameters: %+v", res)
	}

	// Same answer as the full server for the same request.
	want := full.Do("GET", "/api/devices/"+dev.ID, admin, nil)
	_, res = owRun(t, addr, map[string]any{"__ow_method": "get", "__ow_path": "/api/devices/" + dev.ID,
		"__ow_headers": map[string]string{"authorization": "Bearer " + tok.Token}})
	if want.Status != 200 || res.StatusCode != 200 || !strings.HasPrefix(res.Headers["Content-Type"], "application/json") {
		t.Fatalf("GetDevice: full %d, action %+v", want.Status, res)
	}
	sameJSON(t, "GetDevice through /run", want.Body, []byte(res.Body))

	// Not served, bad token, not a web action.
	if _, res = owRun(t, addr, map[string]any{"__ow_method": "post", "__ow_path": "/api/devices", "__ow_headers": map[string]string{"authorization": "Bearer " + tok.Token}, "name": "x"}); res.StatusCode != 404 || !strings.Contains(res.Body, "CreateDevice") {
		t.Errorf("CreateDevice through the SignIn,GetDevice action: %+v", res)
	}
	if _, res = owRun(t, addr, map[string]any{"__ow_method": "get", "__ow_path": "/api/devices/" + dev.ID, "__ow_headers": map[string]string{"authorization": "Bearer " + tamper(tok.Token)}}); res.StatusCode != 401 {
		t.Errorf("tampered token through /run: %+v", res)
	}
	if st, _ := owRun(t, addr, map[string]any{"id": dev.ID}); st != 502 {
		t.Errorf("activation without web-action parameters: %d, want 502 (action error)", st)
	}
}

func TestFunction_RefusesToStartWithoutWhatItNeeds(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--procedures", "GetDevice", "--jwks-url", "http://127.0.0.1:9/jwks"}, "IOT_POSTGRES_DSN"},
		{[]string{"--procedures", "Frobnicate", "--postgres-dsn", "postgres://x", "--jwks-url", "http://x"}, `unknown CoreService procedure "Frobnicate"`},
		{[]string{"--group", "nope", "--postgres-dsn", "postgres://x", "--jwks-url", "http://x"}, "IOT_FUNCTION_GROUP"},
		{[]string{"--procedures", "SignIn", "--postgres-dsn", "postgres://x", "--jwks-url", "http://x"}, "SignIn issues tokens and needs the signing keys"},
		{[]string{"--procedures", "GetDevice", "--postgres-dsn", "postgres://x"}, "IOT_JWKS_URL"},
		{[]string{"--postgres-dsn", "postgres://x", "--jwks-url", "http://x"}, "IOT_FUNCTION_PROCEDURES"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		b, err := exec.CommandContext(ctx, binary, append([]string{"function"}, tc.args...)...).CombinedOutput()
		cancel()
		out := string(b)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("function %v: err %v, output %q (want %q)", tc.args, err, out, tc.want)
		}
	}
}
