package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
)

// TestREST_OriginalWalkthrough runs the original README's curl script
// (sign in, create device, create sensor, fetch key) with its exact paths,
// trailing slashes, lowercase header and jq fields.
func TestREST_OriginalWalkthrough(t *testing.T) {
	p := Start(t, Options{})
	jwt := p.SignIn("root", p.AdminPassword) // jq -r '.token'

	dev := p.Do("POST", "/api/devices/", jwt, `{"name":"demo-device","description":"demo-integration-test-device"}`)
	if dev.Status != 200 || dev.Str("result.id") == "" || dev.Str("result.name") != "demo-device" {
		t.Fatalf("create device: %d %s", dev.Status, dev.Body)
	}
	deviceID := dev.Str("result.id") // jq -r '.result.id'

	sen := p.Do("POST", "/api/devices/"+deviceID+"/sensors/", jwt,
		`{"name":"demo-sensor","description":"demo-integration-test-sensor","mapping":"{\"type\":\"double\"}"}`)
	if sen.Status != 200 || sen.Str("id") == "" || sen.Str("mapping") != `{"type":"double"}` || sen.Str("value_type") != "VALUE_TYPE_DOUBLE" {
		t.Fatalf("create sensor (top-level object expected): %d %s", sen.Status, sen.Body)
	}
	if sen.Str("device_id") != deviceID {
		t.Fatalf("sensor.device_id = %q", sen.Str("device_id"))
	}

	key := p.Do("GET", "/api/devices/"+deviceID+"/key", jwt, nil)
	if key.Status != 200 || strings.Count(key.Str("token"), ".") != 2 {
		t.Fatalf("device key: %d %s", key.Status, key.Body)
	}

	list := p.Do("GET", "/api/devices/", jwt, nil)
	if list.Status != 200 || !strings.Contains(string(list.Body), `"result":[`) || !strings.Contains(string(list.Body), "demo-device") {
		t.Fatalf("list devices: %d %s", list.Status, list.Body)
	}
	sensors := p.Do("GET", "/api/devices/"+deviceID+"/sensors/", jwt, nil)
	if sensors.Status != 200 || !strings.Contains(string(sensors.Body), "demo-sensor") {
		t.Fatalf("list sensors: %d %s", sensors.Status, sensors.Body)
	}
}

func TestREST_DeviceLifecycleAndTree(t *testing.T) {
	p := Start(t, Options{})
	jwt := p.AdminToken()
	id := p.Do("POST", "/api/devices", jwt, `{"name":"car","labels":{"fleet":"a"}}`).Str("result.id")
	for _, path := range []string{"wheels/front/left", "wheels/front/right", "wheels/rear/left", "wheels/rear/right"} {
		r := p.Do("POST", "/api/devices/"+id+"/sensors", jwt, `{"name":"pressure","path":"`+path+`","value_type":"VALUE_TYPE_DOUBLE","unit":"kPa"}`)
		if r.Status != 200 {
			t.Fatalf("sensor %s: %d %s", path, r.Status, r.Body)
		}
	}
	p.Do("POST", "/api/devices/"+id+"/sensors", jwt, `{"name":"consumption","path":"engine","mapping":"{\"type\":\"long\"}"}`)

	tree := p.Do("GET", "/api/devices/"+id+"/tree", jwt, nil)
	body := string(tree.Body)
	for _, want := range []string{`"path":"wheels/front/left/pressure"`, `"path":"engine/consumption"`, `"name":"wheels"`, `"name":"rear"`} {
		if !strings.Contains(body, want) {
			t.Fatalf("tree lacks %s: %s", want, body)
		}
	}

	upd := p.Do("PATCH", "/api/devices/"+id, jwt, `{"description":"blue","labels":{"fleet":"b"},"update_mask":"description,labels"}`)
	if upd.Status != 200 || upd.Str("result.description") != "blue" || upd.Str("result.name") != "car" || upd.Str("result.labels.fleet") != "b" {
		t.Fatalf("patch device: %d %s", upd.Status, upd.Body)
	}
	get := p.Do("GET", "/api/devices/"+id, jwt, nil)
	if get.Str("result.description") != "blue" {
		t.Fatalf("get after patch: %s", get.Body)
	}
	filtered := p.Do("GET", "/api/devices?name_filter=CA&page_size=1", jwt, nil)
	if !strings.Contains(string(filtered.Body), `"car"`) {
		t.Fatalf("name filter: %s", filtered.Body)
	}
	if r := p.Do("DELETE", "/api/devices/"+id, jwt, nil); r.Status != 200 {
		t.Fatalf("delete: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/api/devices/"+id, jwt, nil); r.Status != 404 {
		t.Fatalf("get deleted: %d %s", r.Status, r.Body)
	}
}

func TestREST_ConsumersAndGrants(t *testing.T) {
	p := Start(t, Options{})
	jwt := p.AdminToken()
	d := p.NewDevice(jwt, "meter", "double")
	c := p.Do("POST", "/api/consumers", jwt, `{"name":"analytics","description":"notebook"}`)
	cid := c.Str("result.id")
	if c.Status != 200 || cid == "" {
		t.Fatalf("create consumer: %d %s", c.Status, c.Body)
	}
	g := p.Do("POST", "/api/consumers/"+cid+"/sensors", jwt, `{"sensor_id":"`+d.SensorID+`"}`)
	if g.Status != 200 || g.Str("result.sensor_ids") != `["`+d.SensorID+`"]` {
		t.Fatalf("grant: %d %s", g.Status, g.Body)
	}
	if k := p.Do("GET", "/api/consumers/"+cid+"/key", jwt, nil); k.Status != 200 || k.Str("token") == "" {
		t.Fatalf("consumer key: %d %s", k.Status, k.Body)
	}
	if r := p.Do("GET", "/api/consumers/", jwt, nil); !strings.Contains(string(r.Body), "analytics") {
		t.Fatalf("list consumers: %s", r.Body)
	}
	if r := p.Do("PATCH", "/api/consumers/"+cid, jwt, `{"description":"v2"}`); r.Str("result.description") != "v2" {
		t.Fatalf("patch consumer: %s", r.Body)
	}
	rv := p.Do("DELETE", "/api/consumers/"+cid+"/sensors/"+d.SensorID, jwt, nil)
	if rv.Status != 200 || rv.Str("result.sensor_ids") != "[]" {
		t.Fatalf("revoke: %d %s", rv.Status, rv.Body)
	}
	if r := p.Do("DELETE", "/api/consumers/"+cid+"/sensors/"+d.SensorID, jwt, nil); r.Status != 404 {
		t.Fatalf("revoke twice: %d", r.Status)
	}
	if r := p.Do("DELETE", "/api/consumers/"+cid, jwt, nil); r.Status != 200 {
		t.Fatalf("delete consumer: %d", r.Status)
	}
}

func TestREST_BadInput(t *testing.T) {
	p := Start(t, Options{})
	jwt := p.AdminToken()
	d := p.NewDevice(jwt, "box", "long")
	tests := []struct {
		name, method, path, body string
		status                   int
		mention                  string
	}{
		{"malformed JSON", "POST", "/api/devices/", `{"name":`, 400, ""},
		{"missing name", "POST", "/api/devices/", `{"description":"x"}`, 400, "name"},
		{"duplicate name", "POST", "/api/devices/", `{"name":"box"}`, 409, ""},
		{"unknown device", "GET", "/api/devices/424242", "", 404, ""},
		{"non-numeric id", "GET", "/api/devices/abc", "", 400, "id must be a positive integer"},
		{"truncated body", "POST", "/api/devices/", `{"name":"x"`, 400, "not valid JSON"},
		{"bad mapping", "POST", "/api/devices/" + d.ID + "/sensors/", `{"name":"s","mapping":"{\"type\":\"banana\"}"}`, 400, "mapping"},
		{"no type at all", "POST", "/api/devices/" + d.ID + "/sensors/", `{"name":"s"}`, 400, "value_type"},
		{"slash in sensor name", "POST", "/api/devices/" + d.ID + "/sensors/", `{"name":"a/b","mapping":"{\"type\":\"long\"}"}`, 400, "name"},
		{"duplicate sensor", "POST", "/api/devices/" + d.ID + "/sensors/", `{"name":"box-sensor","mapping":"{\"type\":\"long\"}"}`, 409, ""},
		{"bad username", "POST", "/api/users", `{"username":"No Caps","password":"longenough"}`, 400, "username"},
		{"short password", "POST", "/api/users", `{"username":"eve","password":"x"}`, 400, "password"},
		{"bad page token", "GET", "/api/devices?page_token=%%%", "", 400, ""},
		{"unknown route", "GET", "/api/nothing-here", "", 404, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := p.Do(tc.method, tc.path, jwt, body)
			if r.Status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if tc.mention != "" && !strings.Contains(r.Str("message"), tc.mention) {
				t.Fatalf("message %q should name %q", r.Str("message"), tc.mention)
			}
			for _, leak := range []string{"sqlite", "SQL", "goroutine", ".go:", "strconv", "proto:"} {
				if strings.Contains(string(r.Body), leak) {
					t.Fatalf("response leaks internals (%s): %s", leak, r.Body)
				}
			}
		})
	}
	// A failed create left nothing behind.
	if r := p.Do("GET", "/api/devices/"+d.ID+"/sensors/", jwt, nil); strings.Count(string(r.Body), `"id"`) != 1 {
		t.Fatalf("failed creates left sensors behind: %s", r.Body)
	}
}

// TestREST_WrongMethodIs405WithAllow: a path that exists answered with
// another method is 405 naming the allowed ones, not 501.
func TestREST_WrongMethodIs405WithAllow(t *testing.T) {
	p := Start(t, Options{})
	jwt := p.AdminToken()
	for _, tc := range []struct{ method, path, allow string }{
		{"PUT", "/api/devices/1", "DELETE, GET, PATCH"},
		{"DELETE", "/api/devices", "GET, POST"},
		{"PATCH", "/api/devices/", "GET, POST"},
		{"GET", "/api/users/signin", ""}, // GET /api/users/{id}: a route, answered by it
		{"PUT", "/api/sensors/1/readings", "GET"},
	} {
		req, _ := http.NewRequest(tc.method, p.URL()+tc.path, nil)
		req.Header.Set("authorization", "Bearer "+jwt)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.allow == "" {
			if resp.StatusCode == 405 || resp.StatusCode == 501 {
				t.Errorf("%s %s: %d %s", tc.method, tc.path, resp.StatusCode, body)
			}
			continue
		}
		if resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || !strings.Contains(string(body), `"code":"method_not_allowed"`) {
			t.Errorf("%s %s: %d Allow=%q %s; want 405 Allow=%q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body, tc.allow)
		}
	}
}

func TestREST_SignInAnswersAlikeForUnknownUserAndWrongPassword(t *testing.T) {
	p := Start(t, Options{})
	wrong := p.Do("POST", "/api/users/signin", "", `{"username":"root","password":"wrong-password"}`)
	unknown := p.Do("POST", "/api/users/signin", "", `{"username":"nobody","password":"wrong-password"}`)
	if wrong.Status != 401 || unknown.Status != 401 || string(wrong.Body) != string(unknown.Body) {
		t.Fatalf("wrong password %d %s vs unknown user %d %s", wrong.Status, wrong.Body, unknown.Status, unknown.Body)
	}
	if r := p.Do("POST", "/api/users/signin", "", `{"username":"root"}`); r.Status != 400 {
		t.Fatalf("missing password: %d", r.Status)
	}
}

func TestOps_HealthMetricsOpenAPIJWKS(t *testing.T) {
	p := Start(t, Options{})
	tok := p.AdminToken()
	p.Do("GET", "/api/devices/", tok, nil)
	if _, err := coreClient(p, tok, nil).ListDevices(context.Background(), &corev1.ListDevicesRequest{}); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/healthz":               "ok",
		"/readyz":                `"ok"`,
		"/metrics":               `iot_rpc_requests_total{code="ok",procedure="/iot.core.v1.CoreService/ListDevices",protocol="rest"}`,
		"/metrics?connect":       `iot_rpc_requests_total{code="ok",procedure="/iot.core.v1.CoreService/ListDevices",protocol="connect"}`,
		"/metrics?wal":           `iot_sqlite_wal_bytes{db="registry"}`,
		"/metrics?store-wal":     `iot_sqlite_wal_checkpoints_total{db="readings"}`,
		"/openapi.json":          `"/api/devices/{device_id}/sensors"`,
		"/openapi.json?search":   `"/api/consumers/consume/{sensor_id}/_search"`,
		"/docs/":                 `<script src="swagger-ui-bundle.js"`,
		"/.well-known/jwks.json": `"crv":"Ed25519"`,
	} {
		resp, err := http.Get(p.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("%s: %d, want body containing %s; got %.300s", path, resp.StatusCode, want, b)
		}
	}
	committed, err := os.ReadFile(filepath.Join("..", "openapi", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := http.Get(p.URL() + "/openapi.json")
	served, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(served) != string(committed) {
		t.Error("served OpenAPI differs from the committed openapi/openapi.json")
	}
}

// TestFirstStart_GeneratesAdminPassword: without IOT_ADMIN_PASSWORD a random
// password is printed once and kept 0600 in the data dir; no default exists.
func TestFirstStart_GeneratesAdminPassword(t *testing.T) {
	p := Start(t, Options{GeneratedPassword: true})
	file := filepath.Join(p.DataDir, "admin-password")
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(file)
	pw := strings.TrimSpace(string(b))
	if len(pw) < 16 || !strings.Contains(p.Logs(), pw) {
		t.Fatalf("generated password %q not printed at start", pw)
	}
	p.SignIn("root", pw)
	if r := p.Do("POST", "/api/users/signin", "", `{"username":"root","password":"x5KATOHT9zHczR49aPy0"}`); r.Status != 401 {
		t.Fatal("the original's hard-coded root password must not work")
	}
	// A restart does not print or change it again.
	p.Stop()
	p.Restart()
	if strings.Count(p.Logs(), pw) != 0 {
		t.Fatal("password printed again after restart")
	}
	p.SignIn("root", pw)
}

// TestREST_Pagination walks ListDevices pages with next_page_token.
func TestREST_Pagination(t *testing.T) {
	p := Start(t, Options{})
	jwt := p.AdminToken()
	for _, n := range []string{"a", "b", "c"} {
		p.Do("POST", "/api/devices/", jwt, `{"name":"`+n+`"}`)
	}
	first := p.Do("GET", "/api/devices/?page_size=2", jwt, nil)
	tok := first.Str("next_page_token")
	if strings.Count(string(first.Body), `"owner_id"`) != 2 || tok == "" {
		t.Fatalf("first page: %s", first.Body)
	}
	second := p.Do("GET", "/api/devices/?page_size=2&page_token="+tok, jwt, nil)
	if strings.Count(string(second.Body), `"owner_id"`) != 1 || second.Str("next_page_token") != "" || !strings.Contains(string(second.Body), `"c"`) {
		t.Fatalf("second page: %s", second.Body)
	}
}
