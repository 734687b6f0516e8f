package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestRULESDoc_ExampleRunsAsWritten runs the rules example of docs/RULES.md
// after the README's walk-through with bash, curl and jq.
func TestRULESDoc_ExampleRunsAsWritten(t *testing.T) {
	readme := bashBlocks(t, "README.md", "## Walk-through with curl")
	example := bashBlocks(t, "docs/RULES.md", "## Example")
	xfer := bashBlocks(t, "docs/RULES.md", "## Export and backfill")
	if len(readme) < 1 || len(example) != 1 || len(xfer) != 1 {
		t.Fatalf("blocks: readme %d, rules %d, export %d", len(readme), len(example), len(xfer))
	}
	p := Start(t, Options{GeneratedPassword: true})
	script := strings.NewReplacer(
		"http://localhost:8080", "http://"+p.API,
		"http://localhost:8083/", "http://"+p.HTTP+"/",
		"data/admin-password", filepath.Join(p.DataDir, "admin-password"),
	).Replace("set -euo pipefail\n" + readme[0] + "\necho\n" + example[0] + "\n" + xfer[0])
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(iotctl)+":"+os.Getenv("PATH"), "XDG_CONFIG_HOME="+t.TempDir(), "IOT_PROFILE=", "IOT_OUTPUT=")
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("script failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), `{"state":"STATE_RESOLVED","value":"9.5","resolve_value":"7"}`) || !strings.Contains(string(out), `"1"`) ||
		!strings.Contains(string(out), "sensor_id,timestamp,value") || !strings.Contains(string(out), "round trip equal") || !strings.Contains(string(out), "4/4 readings (100%) stored") {
		t.Fatalf("unexpected output:\n%s", out)
	}
}
