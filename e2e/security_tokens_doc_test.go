package e2e

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestSecurityDoc_TokensAndAuditCommandsRunAsWritten runs the curl commands
// of the "Tokens and audit" section of docs/SECURITY.md against the built
// binary (only the port is rewritten).
func TestSecurityDoc_TokensAndAuditCommandsRunAsWritten(t *testing.T) {
	needTool(t, "curl")
	needTool(t, "jq")
	blocks := bashBlocks(t, "docs/SECURITY.md", "## Tokens and audit")
	if len(blocks) != 3 {
		t.Fatalf("want 3 bash blocks under Tokens and audit (refresh, rotate with ttl, audit); got %d", len(blocks))
	}
	p := Start(t, Options{})
	jwt := p.AdminToken()
	d := p.NewDevice(jwt, "doc-device", "double")
	_, port, _ := net.SplitHostPort(p.API)
	ports := strings.NewReplacer("localhost:8080", "localhost:"+port)
	env := []string{"IOT_ADMIN_PASSWORD=" + p.AdminPassword, "JWT=" + jwt, "DEVICE_ID=" + d.ID}
	run := func(script string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+ports.Replace(script))
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("doc commands failed: %v\n%s\n--- script ---\n%s", err, out, script)
		}
		return string(out)
	}
	if out := run(blocks[0]); out != "401\n401\n" {
		t.Errorf("refresh block: output %q, want the replayed refresh token refused (401) and then its successor (401: the session ended)", out)
	}
	if out := run(blocks[1]); !strings.Contains(out, `"expire_time"`) || !strings.Contains(out, `"token"`) {
		t.Errorf("rotate block: %s", out)
	}
	if out := run(blocks[2]); !strings.Contains(out, `"action":"device.key.rotate"`) || !strings.Contains(out, `"target_id":"`+d.ID+`"`) {
		t.Errorf("audit block: %s", out)
	}
}

// TestSecurityDoc_KafkaSASLCommandRunsAsWritten runs the Kafka SASL example
// of "Backend credentials" against the test broker's SASL listener: the
// platform only becomes ready when the brokers accepted the login.
func TestSecurityDoc_KafkaSASLCommandRunsAsWritten(t *testing.T) {
	l := testenv.KafkaSASLListener(t)
	pw, err := os.ReadFile(l.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks := bashBlocks(t, "docs/SECURITY.md", "## Backend credentials")
	if len(blocks) != 1 {
		t.Fatalf("want 1 bash block under Backend credentials (Kafka SASL); got %d", len(blocks))
	}
	lines := strings.SplitN(strings.ReplaceAll(blocks[0], "\\\n", " "), "\n", 2)
	dir := t.TempDir()
	cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+lines[0])
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "KAFKA_PASSWORD="+strings.TrimSpace(string(pw)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v %s", lines[0], err, out)
	}
	var env, args []string
	fields := strings.Fields(lines[1])
	i := 0
	for ; i < len(fields) && strings.Contains(fields[i], "="); i++ {
		k, v, _ := strings.Cut(fields[i], "=")
		if k == "IOT_KAFKA_SASL_PASSWORD_FILE" {
			v = filepath.Join(dir, v)
		}
		env = append(env, k+"="+v)
	}
	if len(fields) < i+2 || fields[i] != "iotplatform" || fields[i+1] != "serve" {
		t.Fatalf("not an iotplatform serve command: %q", lines[1])
	}
	for _, a := range fields[i+2:] {
		if a == "127.0.0.1:59094" {
			a = l.Brokers
		}
		args = append(args, a)
	}
	args = append(args, "--kafka-topic", "doc.sasl."+randHex(4), "--kafka-group", "doc-sasl-"+randHex(4))
	p := Start(t, Options{Args: args, Env: env})
	d := p.NewDevice(p.AdminToken(), "doc-sasl", "double")
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":`+d.SensorID+`,"value":3}`)); s != 200 {
		t.Fatalf("ingest through SASL Kafka: %d", s)
	}
}
