package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestREADME_WalkthroughRunsAsWritten extracts the curl walk-through and the
// read-back commands from README.md and runs them with bash, curl and jq
// against the built binary. Only the addresses and the data dir are
// rewritten to the test's.
func TestREADME_WalkthroughRunsAsWritten(t *testing.T) {
	blocks := bashBlocks(t, "README.md", "## Walk-through with curl")
	if len(blocks) < 2 {
		t.Fatalf("want the walk-through and the read-back blocks, found %d", len(blocks))
	}
	p := Start(t, Options{GeneratedPassword: true})
	script := strings.NewReplacer(
		"http://localhost:8080", "http://"+p.API,
		"http://localhost:8083/", "http://"+p.HTTP+"/",
		"data/admin-password", filepath.Join(p.DataDir, "admin-password"),
	).Replace("set -euo pipefail\n" + blocks[0] + "\necho\n" + blocks[1])
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README script failed: %v\n%s", err, out)
	}
	t.Logf("README script output:\n%s", out)
	for _, want := range []string{
		`{"accepted":1}`,                     // the push
		`"timestamp":"2018-05-19T08:19:27Z"`, // seconds normalised
		`"double_value":91827364`,            // numeric string coerced for a double sensor
		`"avg"`,                              // the aggregate
	} {
		if !strings.Contains(strings.ReplaceAll(string(out), " ", ""), strings.ReplaceAll(want, " ", "")) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	for _, f := range []string{"jwt.json", "device.json", "sensor.json", "token.json"} {
		if b, err := os.ReadFile(filepath.Join(cmd.Dir, f)); err != nil || len(b) == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
}

// TestREADME_GrpcurlExamplesRun runs the README's grpcurl block with the
// pinned grpcurl from `make tools` against the built binary.
func TestREADME_GrpcurlExamplesRun(t *testing.T) {
	grpcurl, err := filepath.Abs(filepath.Join("..", "bin", "tools", "grpcurl"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(grpcurl); err != nil {
		if os.Getenv("IOT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("bin/tools/grpcurl missing: run `make tools`")
		}
		t.Skip("bin/tools/grpcurl missing: run `make tools` (make test does)")
	}
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	section = section[strings.Index(section, "## grpcurl"):]
	a := strings.Index(section, "```bash\n") + len("```bash\n")
	block := section[a : a+strings.Index(section[a:], "```")]

	p := Start(t, Options{})
	jwt := p.AdminToken()
	dev := p.NewDevice(jwt, "grpcurl-device", "double")
	script := "set -euo pipefail\n" + strings.ReplaceAll(block, "localhost:8080", p.API)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(grpcurl)+":"+os.Getenv("PATH"),
		"PASSWORD="+p.AdminPassword, "JWT="+jwt, "DEVICE_ID="+dev.ID)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("README grpcurl block failed: %v\n%s", err, out)
	}
	for _, want := range []string{"iot.core.v1.CoreService", "iot.ingest.v1.IngestService", "iot.query.v1.QueryService", `"token":`, "grpcurl-device", `"path": "grpcurl-device-sensor"`, `"status": "SERVING"`} {
		if !strings.Contains(string(out), want) {
			t.Errorf("grpcurl output lacks %s:\n%s", want, out)
		}
	}
}
