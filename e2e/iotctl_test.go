package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestIotctl_AdministerPushAndRead drives the CLI as an operator would.
func TestIotctl_AdministerPushAndRead(t *testing.T) {
	p := Start(t, Options{})
	ctl := func(token, stdin string, args ...string) (string, error) {
		cmd := exec.Command(iotctl, args...)
		cmd.Env = append(os.Environ(), "IOT_API="+p.URL(), "IOT_TOKEN="+token, "IOT_PASSWORD=")
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
	if out, err := ctl(tok, "", "frobnicate"); err == nil || !strings.Contains(out, "usage:") {
		t.Fatalf("unknown command: %v %s", err, out)
	}
}

func toJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
