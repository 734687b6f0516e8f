package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIotctl_AdministerPushAndRead drives the CLI as an operator would.
func TestIotctl_AdministerPushAndRead(t *testing.T) {
	p := Start(t, Options{})
	config := t.TempDir()
	ctl := func(token, stdin string, args ...string) (string, error) {
		cmd := exec.Command(iotctl, args...)
		cmd.Env = append(os.Environ(), "IOT_API="+p.URL(), "IOT_TOKEN="+token, "IOT_PASSWORD=", "XDG_CONFIG_HOME="+config)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	must := func(token string, args ...string) map[string]any {
		t.Helper()
		out, err := ctl(token, "", args...)
		if err != nil {
			t.Fatalf("iotctl %v: %v\n%s", args, err, out)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil {
			t.Fatalf("iotctl %v printed no JSON: %s", args, out)
		}
		return m
	}
	tok, err := ctl("", p.AdminPassword+"\n", "login", "root")
	if err != nil || strings.Count(tok, ".") != 2 {
		t.Fatalf("login: %v %s", err, tok)
	}
	if out, err := ctl("", "wrong\n", "login", "root"); err == nil || !strings.Contains(out, "unauthenticated") {
		t.Fatalf("wrong password: %v %s", err, out)
	}
	dev := must(tok, "devices", "create", "cli-car", "made by iotctl")["result"].(map[string]any)["id"].(string)
	sen := must(tok, "sensors", "create", dev, "speed", "double", "engine")["sensor"].(map[string]any)["id"].(string)
	key := must(tok, "devices", "key", dev)["token"].(string)
	if m := must(key, "push", sen, "42.5"); m["accepted"] != float64(1) {
		t.Fatalf("push: %v", m)
	}
	latest := must(tok, "latest", sen)
	if !strings.Contains(toJSON(latest), `"double_value":42.5`) {
		t.Fatalf("latest: %v", latest)
	}
	if !strings.Contains(toJSON(must(tok, "devices", "tree", dev)), `"engine/speed"`) {
		t.Fatal("tree lacks engine/speed")
	}
	if out, err := ctl(key, "", "devices", "list"); err == nil || !strings.Contains(out, "permission_denied") {
		t.Fatalf("device key listing devices: %v %s", err, out)
	}
	if out, err := ctl(tok, "", "frobnicate"); err == nil || !strings.Contains(out, `unknown command "frobnicate"`) || !strings.Contains(out, "iotctl help") {
		t.Fatalf("unknown command: %v %s", err, out)
	}
	if out, err := ctl(tok, "", "sensors", "create", dev); err == nil || !strings.Contains(out, "wrong number of arguments") || !strings.Contains(out, "Usage:") {
		t.Fatalf("missing arguments: %v %s", err, out)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestIotctl_LoginKeepsTheSessionAndRenewsTheToken: login prints the user
// token and stores the session with its refresh token in the profile file
// (0600); once the
// user token has expired iotctl renews it through the refresh token, both
// with that token in IOT_TOKEN (export IOT_TOKEN=$(iotctl login ...)) and
// with no token at all, and keeps the rotated refresh token. Another token
// in IOT_TOKEN is used as is.
func TestIotctl_LoginKeepsTheSessionAndRenewsTheToken(t *testing.T) {
	p := Start(t, Options{Args: []string{"--user-token-ttl", "3s"}})
	config := t.TempDir()
	ctl := func(token string, args ...string) (string, error) {
		cmd := exec.Command(iotctl, args...)
		cmd.Env = append(os.Environ(), "IOT_API="+p.URL(), "IOT_TOKEN="+token, "IOT_PASSWORD="+p.AdminPassword, "XDG_CONFIG_HOME="+config)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	path := filepath.Join(config, "iotctl", "config.json")
	stored := func() map[string]any {
		t.Helper()
		fi, err := os.Stat(path)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("profile file: %v %v, want mode 0600", fi, err)
		}
		b, _ := os.ReadFile(path)
		var m struct {
			Profiles map[string]map[string]any `json:"profiles"`
		}
		if err := json.Unmarshal(b, &m); err != nil || m.Profiles["default"] == nil {
			t.Fatalf("profile file: %v %s", err, b)
		}
		return m.Profiles["default"]
	}
	tok, err := ctl("", "login", "root")
	if err != nil || strings.Count(tok, ".") != 2 {
		t.Fatalf("login: %v %s", err, tok)
	}
	first := stored()
	rt, _ := first["refresh_token"].(string)
	if !strings.HasPrefix(rt, "iotr_") || first["token"] != tok || first["api"] != p.URL() {
		t.Fatalf("stored session: %v", first)
	}

	time.Sleep(3500 * time.Millisecond) // the user token has expired
	if me := p.Do("GET", "/api/me", tok, nil); me.Status != 401 {
		t.Fatalf("the printed token should have expired: %d %s", me.Status, me.Body)
	}
	if out, err := ctl(tok, "devices", "list"); err != nil {
		t.Fatalf("devices list with the expired login token: %v %s", err, out)
	}
	second := stored()
	if second["refresh_token"] == rt || second["token"] == tok || second["login_token"] != tok {
		t.Fatalf("the renewed session was not kept: %v", second)
	}
	time.Sleep(3500 * time.Millisecond)
	if out, err := ctl("", "consumers", "list"); err != nil {
		t.Fatalf("consumers list from the stored session alone: %v %s", err, out)
	}
	if third := stored(); third["refresh_token"] == second["refresh_token"] {
		t.Fatalf("second renewal not kept: %v", third)
	}
	// The first refresh token was used up by the first renewal; presenting
	// it again is a replay, which ends the session: the stored, newest
	// refresh token stops working too.
	if r := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": rt}); r.Status != 401 {
		t.Fatalf("reusing the first refresh token: %d %s, want 401", r.Status, r.Body)
	}
	if r := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": stored()["refresh_token"].(string)}); r.Status != 401 {
		t.Fatalf("the session's newest refresh token after a replay: %d %s, want 401", r.Status, r.Body)
	}

	// Without the session an expired token is refused: the renewal above is
	// what made it work. A token that is not the session's is used as is.
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl(tok, "devices", "list"); err == nil || !strings.Contains(out, "unauthenticated") {
		t.Fatalf("expired token without a session: %v %s", err, out)
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("a profile file appeared without login")
	}

	// A session.json of an earlier iotctl (same fields) is taken over as
	// the default profile and renewed into config.json.
	r := p.Do("POST", "/api/users/signin", "", map[string]string{"username": "root", "password": p.AdminPassword})
	old := map[string]any{"api": p.URL(), "login_token": r.Str("token"), "token": r.Str("token"),
		"refresh_token": r.Str("refresh_token"), "expire_time": "2000-01-01T00:00:00Z"}
	b, _ := json.Marshal(old)
	if err := os.WriteFile(filepath.Join(config, "iotctl", "session.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := ctl("", "devices", "list"); err != nil {
		t.Fatalf("devices list from an old session.json: %v %s", err, out)
	}
	if migrated := stored(); migrated["refresh_token"] == old["refresh_token"] || migrated["api"] != p.URL() {
		t.Fatalf("session.json not taken over: %v", migrated)
	}
}
