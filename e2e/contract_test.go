package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
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
