package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"
)

// TestCommands_WatchDeviceStatesOverREST: GET
// /api/device-states/watch?device_ids=... streams newline-delimited JSON,
// the current state first and then each change (here the device connecting
// over MQTT), as a plain HTTP client reads it; bad requests get ordinary
// REST errors.
func TestCommands_WatchDeviceStatesOverREST(t *testing.T) {
	p := Start(t, Options{})
	tok := p.AdminToken()
	d := p.NewDevice(tok, "watched", "double")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	for _, tc := range []struct {
		query, token string
		status       int
		code         string
	}{
		{"?device_ids=" + d.ID, "", 401, "unauthenticated"},
		{"?device_ids=abc", tok, 400, "invalid_argument"},
		{"", tok, 400, "invalid_argument"},
		{"?device_ids=999999", tok, 404, "not_found"},
		{"?device_ids=" + d.ID, d.Token, 403, ""},
	} {
		r := p.Do("GET", "/api/device-states/watch"+tc.query, tc.token, nil)
		if r.Status != tc.status || (tc.code != "" && r.Str("code") != tc.code) {
			t.Errorf("GET device-states/watch%s: %d %s, want %d %s", tc.query, r.Status, r.Body, tc.status, tc.code)
		}
	}

	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.API+"/api/device-states/watch?device_ids="+d.ID, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	lines := make(chan map[string]any, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) != nil {
				m = map[string]any{"unparsable": sc.Text()}
			}
			lines <- m
		}
		close(lines)
	}()
	next := func() map[string]any {
		t.Helper()
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatal("stream ended")
			}
			res, _ := m["result"].(map[string]any)
			if res == nil {
				t.Fatalf("line without result: %v", m)
			}
			return res
		case <-time.After(15 * time.Second):
			t.Fatal("no state line within 15s")
		}
		return nil
	}
	if first := next(); first["device_id"] != d.ID || first["online"] != false {
		t.Fatalf("first line %v, want the device offline", first)
	}
	mosquittoSub(t, ctx, p, d, "mqttv311", d.ID+"/commands")
	for {
		st := next()
		if st["online"] == true {
			if st["edge"] != "mqtt" {
				t.Fatalf("online on %v, want mqtt", st["edge"])
			}
			break
		}
	}
}
