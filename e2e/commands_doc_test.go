package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommandsDoc_TryItRunsAsWritten runs the "Try it" blocks of
// docs/COMMANDS.md — mosquitto_sub/pub, Node's WebSocket, curl long-poll,
// grpcurl on the device stream, the state calls — with bash against the
// built binary; only addresses and the data dir are rewritten.
func TestCommandsDoc_TryItRunsAsWritten(t *testing.T) {
	blocks := bashBlocks(t, "docs/COMMANDS.md", "## Try it")
	if len(blocks) != 6 {
		t.Fatalf("want 6 blocks (setup, MQTT, WebSocket, HTTP, gRPC, state), found %d", len(blocks))
	}
	tools, err := filepath.Abs(filepath.Join("..", "bin", "tools"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(tools, "grpcurl")); err != nil {
		t.Fatalf("grpcurl not installed (make tools): %v", err)
	}
	p := Start(t, Options{GeneratedPassword: true})
	mqttHost, mqttPort, _ := net.SplitHostPort(p.MQTT)
	script := strings.NewReplacer(
		"http://localhost:8080", "http://"+p.API,
		"localhost:8080", p.API,
		"http://localhost:8083/", "http://"+p.HTTP+"/",
		"ws://localhost:8765/", "ws://"+p.WS+"/",
		"-h localhost -p 1883", "-h "+mqttHost+" -p "+mqttPort,
		"data/admin-password", filepath.Join(p.DataDir, "admin-password"),
	).Replace("set -euo pipefail\n" + strings.Join(blocks, "\necho\n"))
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+tools+":"+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docs/COMMANDS.md script failed: %v\n%s", err, out)
	}
	t.Logf("output:\n%s", out)
	for _, want := range []string{
		`["COMMAND_STATUS_SUCCEEDED",["COMMAND_STATUS_QUEUED","COMMAND_STATUS_SENT","COMMAND_STATUS_DELIVERED","COMMAND_STATUS_SUCCEEDED"],{"relay":"on"}]`,
		`["COMMAND_STATUS_SUCCEEDED",{"blinked":3}]`,
		`["COMMAND_STATUS_FAILED",["","sent on http","long-poll answer written on http","valve stuck"]]`,
		`"reboot"`,
		`[false,{"firmware":"1.4.2"},{"interval_s":30},"1",true]`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output lacks %s", want)
		}
	}
	if !strings.Contains(string(out), "\"reboot\"\n\"COMMAND_STATUS_SUCCEEDED\"") {
		t.Errorf("the gRPC example did not answer its command")
	}
}
