package e2e

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildStatic builds cmd/iotplatform with CGO_ENABLED=0 and a stamped version.
func buildStatic(t *testing.T, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "iotplatform")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+version, "-o", out, "../cmd/iotplatform")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, b)
	}
	return out
}

func TestBuild_StaticBinaryRunsEmbeddedAndRefusesKafkaClearly(t *testing.T) {
	bin := buildStatic(t, "v0.0.0-static")

	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	interp := f.Section(".interp")
	f.Close()
	if len(libs) > 0 || interp != nil {
		t.Fatalf("CGO_ENABLED=0 binary is dynamically linked: libs %v, interpreter %v", libs, interp != nil)
	}

	out, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(out), "v0.0.0-static") || !strings.Contains(string(out), "without the Kafka bus") {
		t.Fatalf("version = %q, %v (want the stamped version and the no-Kafka note)", out, err)
	}

	// Choosing Kafka, by flag or by env, refuses to start and says why.
	for name, tc := range map[string]struct{ args, env []string }{
		"flag": {args: []string{"--kafka-brokers", "127.0.0.1:9"}},
		"env":  {env: []string{"IOT_KAFKA_BROKERS=127.0.0.1:9"}},
	} {
		t.Run("kafka-"+name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, append([]string{"serve", "--data-dir", t.TempDir(), "--log-format", "text"}, tc.args...)...)
			cmd.Env = append(append(os.Environ(), "IOT_ADMIN_PASSWORD=pw-"+randHex(6)), tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if ctx.Err() != nil {
				t.Fatal("the static binary kept running with Kafka brokers set")
			}
			if err == nil {
				t.Fatal("the static binary exited 0 with Kafka brokers set")
			}
			for _, want := range []string{"IOT_KAFKA_BROKERS", "without the Kafka bus", "CGO_ENABLED=0", "cgo"} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("start failure does not mention %q:\n%s", want, stderr.String())
				}
			}
		})
	}

	// On the embedded bus the static binary is a whole platform.
	addrs := freeAddrs(t, 4)
	startProc(t, "static", bin, []string{"serve", "--data-dir", t.TempDir(), "--log-format", "text",
		"--api-addr", addrs[0], "--http-addr", addrs[1], "--ws-addr", addrs[2], "--mqtt-addr", addrs[3]},
		[]string{"IOT_ADMIN_PASSWORD=pw-" + randHex(6)}, "http://"+addrs[0]+"/readyz")
}

func TestBuild_MakeCrossBuildsLinuxArm64WithVersion(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("make", "-C", "..", "build-arm64", "BIN="+dir, "VERSION=v0.0.0-arm64")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make build-arm64: %v\n%s", err, b)
	}
	for _, name := range []string{"iotplatform", "iotctl"} {
		path := filepath.Join(dir, "linux-arm64", name)
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		if f.Machine != elf.EM_AARCH64 {
			t.Errorf("%s: machine %v, want EM_AARCH64", name, f.Machine)
		}
		f.Close()
	}
	b, err := os.ReadFile(filepath.Join(dir, "linux-arm64", "iotplatform"))
	if err != nil || !bytes.Contains(b, []byte("v0.0.0-arm64")) {
		t.Errorf("arm64 binary does not carry the stamped version (err %v)", err)
	}
}
