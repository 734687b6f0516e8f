package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestContract_OneErrorShapeAndVocabularyEveryEdge: REST, the HTTP
// gateway, WebSocket upgrades and acks, and dead letters answer with the
// codes of docs/ERRORS.md in the {"code", "message"} shape.
func TestContract_OneErrorShapeAndVocabularyEveryEdge(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "contract", "double")
	decode := func(what string, resp *http.Response) map[string]any {
		t.Helper()
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil || m["code"] == nil || m["message"] == nil {
			t.Fatalf("%s: body %s is not {code, message}", what, b)
		}
		return m
	}
	do := func(method, url string, h http.Header, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, url, strings.NewReader(body))
		for k, v := range h {
			req.Header[k] = v
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	json := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		what, method, url string
		h                 http.Header
		status            int
		code              string
	}{
		{"HTTP gateway without a token", "POST", "http://" + p.HTTP + "/", json, 401, "unauthenticated"},
		{"HTTP gateway with a user token", "POST", "http://" + p.HTTP + "/", http.Header{"Content-Type": {"application/json"}, "authorization": {"Bearer " + admin}}, 403, "permission_denied"},
		{"HTTP gateway, wrong method", "GET", "http://" + p.HTTP + "/", nil, 405, "method_not_allowed"},
		{"WebSocket upgrade without a token", "GET", "http://" + p.WS + "/", http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-WebSocket-Version": {"13"}, "Sec-WebSocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}, 401, "unauthenticated"},
		{"WebSocket upgrade with a user token", "GET", "http://" + p.WS + "/", http.Header{"authorization": {"Bearer " + admin}}, 403, "permission_denied"},
		{"REST without a token", "GET", p.URL() + "/api/devices", nil, 401, "unauthenticated"},
		{"REST unknown path", "GET", p.URL() + "/api/nothing", http.Header{"authorization": {"Bearer " + admin}}, 404, "not_found"},
		{"REST wrong method", "PUT", p.URL() + "/api/devices", http.Header{"authorization": {"Bearer " + admin}}, 405, "method_not_allowed"},
	} {
		resp := do(tc.method, tc.url, tc.h, `{"sensor_id":1,"value":1}`)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d", tc.what, resp.StatusCode, tc.status)
		}
		if m := decode(tc.what, resp); m["code"] != tc.code {
			t.Errorf("%s: code %v, want %s", tc.what, m["code"], tc.code)
		}
	}

	// A text payload that is neither JSON nor protobuf, on every edge that
	// does not declare its format: refused (WebSocket binary frame) or
	// dead-lettered (MQTT 3.1.1) as "not JSON or protobuf".
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"Bearer " + d.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Write(ctx, websocket.MessageBinary, []byte("temperature=21.5"))
	_, ack, err := c.Read(ctx)
	c.Close(websocket.StatusNormalClosure, "")
	if err != nil || !strings.Contains(string(ack), `"code":"malformed"`) || !strings.Contains(string(ack), "not JSON or protobuf") {
		t.Errorf("WebSocket binary text payload: ack %s %v", ack, err)
	}
	mosquittoPub(t, p, d, 1, "mqttv311", "temperature=21.5")
	dls := waitDeadLetters(t, p, admin, d)
	if len(dls) != 1 || !strings.HasPrefix(dls[0].GetReason(), "malformed: ") || !strings.Contains(dls[0].GetReason(), "not JSON or protobuf") ||
		!strings.Contains(dls[0].GetReason(), "as protobuf ReadingBatch") {
		t.Errorf("MQTT text payload dead letter: %v", dls)
	}
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestReadyz_EveryListenerAndRefusesARoleThatCannotWork: /readyz and
// /healthz answer on the API, HTTP and WebSocket ports; an ingest role on
// the embedded bus without the pipeline role in its process refuses to
// start, naming --roles and --kafka-brokers.
func TestReadyz_EveryListenerAndRefusesARoleThatCannotWork(t *testing.T) {
	p := Start(t, Options{})
	for _, addr := range []string{p.API, p.HTTP, p.WS} {
		for _, path := range []string{"/readyz", "/healthz"} {
			if s, body := getStatus(t, "http://"+addr+path); s != 200 {
				t.Errorf("%s%s: %d %s", addr, path, s, body)
			}
		}
	}

	addrs := freeAddrs(t, 4)
	cmd := exec.Command(binary, "serve", "--roles", "core,ingest,query", "--data-dir", t.TempDir(), "--api-addr", addrs[0],
		"--http-addr", addrs[1], "--ws-addr", addrs[2], "--mqtt-addr", addrs[3])
	cmd.Env = append(os.Environ(), "IOT_ADMIN_PASSWORD=pw-"+randHex(8))
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "IOT_ROLES") || !strings.Contains(string(out), "IOT_KAFKA_BROKERS") {
		t.Fatalf("ingest without a pipeline on the embedded bus: %v\n%s\nwant a refusal naming IOT_ROLES and IOT_KAFKA_BROKERS", err, out)
	}
}

// TestConfig_UnparsableValueRefusesToStart: the binary exits naming the
// variable instead of using the default.
func TestConfig_UnparsableValueRefusesToStart(t *testing.T) {
	cmd := exec.Command(binary, "serve", "--data-dir", t.TempDir())
	cmd.Env = append(os.Environ(), "IOT_MQTT_QUEUE=lots")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "IOT_MQTT_QUEUE") {
		t.Fatalf("IOT_MQTT_QUEUE=lots: %v\n%s", err, out)
	}
}

// TestContract_SmallerEdges: grpcurl lists the health service; the
// WebSocket gateway takes a bare JWT in authorization like the original
// (a non-JWT value stays 401); device and sensor names refuse control and
// bidirectional-override characters.
func TestContract_SmallerEdges(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	grpcurl, _ := filepath.Abs(filepath.Join("..", "bin", "tools", "grpcurl"))
	if _, err := os.Stat(grpcurl); err != nil {
		t.Fatalf("grpcurl not installed (make tools): %v", err)
	}
	out, err := exec.Command(grpcurl, "-plaintext", p.API, "list").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "grpc.health.v1.Health") {
		t.Errorf("grpcurl list: %v\n%s", err, out)
	}

	d := p.NewDevice(admin, "bare", "double")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {d.Token}}})
	if err != nil {
		t.Fatalf("WebSocket with a bare JWT in authorization: %v", err)
	}
	_ = c.Write(ctx, websocket.MessageText, []byte(`{"sensor_id":`+d.SensorID+`,"value":1}`))
	if _, ack, err := c.Read(ctx); err != nil || !strings.Contains(string(ack), `"status":200`) {
		t.Errorf("bare JWT ack: %s %v", ack, err)
	}
	c.Close(websocket.StatusNormalClosure, "")
	if _, resp, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"not-a-jwt"}}}); err == nil || resp == nil || resp.StatusCode != 401 {
		t.Errorf("WebSocket with a non-JWT authorization: %v %v, want 401", err, resp)
	}

	for _, name := range []string{"nul\x00name", "line\nbreak", "tab\tname", "evil\u202Egnp.exe", "iso\u2066late"} {
		if r := p.Do("POST", "/api/devices/", admin, map[string]string{"name": name}); r.Status != 400 || r.Str("code") != "invalid_argument" {
			t.Errorf("device name %q: %d %s", name, r.Status, r.Body)
		}
		if r := p.Do("POST", "/api/devices/"+d.ID+"/sensors/", admin, map[string]string{"name": name, "mapping": `{"type":"long"}`}); r.Status != 400 {
			t.Errorf("sensor name %q: %d %s", name, r.Status, r.Body)
		}
	}
	if r := p.Do("POST", "/api/devices/", admin, map[string]string{"name": "Küche – Sensor 1"}); r.Status != 200 {
		t.Errorf("plain Unicode name refused: %d %s", r.Status, r.Body)
	}
}
