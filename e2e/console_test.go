package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestConsole_Chromium drives the web console in real headless Chromium
// (Debian's chromium with playwright-core, installed by
// scripts/install-console-test-tools.sh, which `make test` runs) against
// the built binary: web/test/*.test.mjs under node's test runner. Screenshots
// of the main pages go to web/artifacts/ (gitignored).
func TestConsole_Chromium(t *testing.T) {
	node, err := exec.LookPath("node")
	missing := err != nil
	python, _ := filepath.Abs("../sdk/python/.venv/bin/python") // the Python SDK snippet runs with it
	for _, p := range []string{"/usr/bin/chromium", "../web/node_modules/playwright-core/package.json", python} {
		if _, err := os.Stat(p); err != nil {
			missing = true
		}
	}
	if missing {
		if os.Getenv("IOT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatal("node, /usr/bin/chromium, web/node_modules or sdk/python/.venv missing: run scripts/install-console-test-tools.sh")
		}
		t.Skip("node, /usr/bin/chromium, web/node_modules or sdk/python/.venv missing: run scripts/install-console-test-tools.sh (make test does)")
	}
	sdkPython, _ := filepath.Abs("../sdk/python") // the SDK from its sources, as scripts/sdk-test.sh tests it
	p := Start(t, Options{})
	artifacts, _ := filepath.Abs("../web/artifacts")
	old, _ := filepath.Glob(filepath.Join(artifacts, "failed-step-*.png"))
	for _, f := range old {
		os.Remove(f)
	}
	os.MkdirAll(artifacts, 0o755)
	_, mqttPort, _ := strings.Cut(p.MQTT, ":")
	args := []string{"--test", "--test-concurrency=1", "--test-reporter=spec", "--test-timeout=120000"}
	if only := os.Getenv("IOT_CONSOLE_TEST"); only != "" {
		args = append(args, "test/"+only+".test.mjs")
	} else {
		files, _ := filepath.Glob("../web/test/*.test.mjs")
		for _, f := range files {
			args = append(args, "test/"+filepath.Base(f))
		}
	}
	cmd := exec.Command(node, args...)
	cmd.Dir = "../web"
	cmd.Env = append(os.Environ(),
		"IOT_CONSOLE_API=http://"+p.API,
		"IOT_CONSOLE_HTTP=http://"+p.HTTP+"/",
		"IOT_CONSOLE_WS=ws://"+p.WS+"/",
		"IOT_CONSOLE_MQTT_HOST=127.0.0.1",
		"IOT_CONSOLE_MQTT_PORT="+mqttPort,
		"IOT_CONSOLE_ADMIN_PASSWORD="+p.AdminPassword,
		"IOT_CONSOLE_ARTIFACTS="+artifacts,
		"IOT_CONSOLE_IOTCTL="+iotctl,
		"IOT_CONSOLE_GRPCURL="+grpcurlPath(t),
		"IOT_CONSOLE_PYTHON="+python,
		"IOT_CONSOLE_PYTHONPATH="+sdkPython,
	)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("console tests (%s):\n%s", time.Since(start).Round(time.Second), out)
	if err != nil {
		t.Fatalf("console tests failed: %v", err)
	}
}
