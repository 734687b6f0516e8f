package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// TestExamples_ProducersPushAndReadBack builds every sample producer in
// examples/ once (tsc, go build, Maven offline, gcc with nanopb) and runs
// each one per protocol against the built binary with its own device and
// sensor, then reads the readings back through the Query API: three
// readings 20, 20.5 and 21 each.
func TestExamples_ProducersPushAndReadBack(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	ex := filepath.Join(root, "examples")
	if out, err := exec.Command(filepath.Join(root, "scripts", "install-examples.sh")).CombinedOutput(); err != nil {
		t.Fatalf("scripts/install-examples.sh: %v\n%s", err, out)
	}
	bin := t.TempDir()
	// tsc and Maven are slow to start: their output is rebuilt only when
	// older than its sources (scripts/install-examples.sh builds it once).
	for _, b := range []struct {
		dir     string
		args    []string
		out     string
		sources []string
	}{
		{"node", []string{"npm", "run", "--silent", "build"}, "dist/producer.js", []string{"src", "tsconfig.json", "package-lock.json"}},
		{"go", []string{"go", "build", "-o", filepath.Join(bin, "go-producer"), "."}, "", nil},
		{"java", []string{"mvn", "-B", "-q", "-o", "-Dstyle.color=never", "package"}, "target/producer.jar", []string{"src", "pom.xml"}},
		{"c", []string{"make", "--no-print-directory", "-s"}, "", nil},
	} {
		if b.out != "" && !stale(filepath.Join(ex, b.dir), b.out, b.sources) {
			t.Logf("examples/%s: %s is up to date", b.dir, b.out)
			continue
		}
		start := time.Now()
		cmd := exec.Command(b.args[0], b.args[1:]...)
		cmd.Dir = filepath.Join(ex, b.dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build examples/%s (%s): %v\n%s", b.dir, strings.Join(b.args, " "), err, out)
		}
		t.Logf("built examples/%s in %v", b.dir, time.Since(start).Round(time.Millisecond))
	}

	p := Start(t, Options{GeneratedPassword: true}) // data/admin-password, as examples/README.md reads
	admin := p.SignIn("root", readAdminPassword(t, p))
	for _, tc := range []struct {
		name string
		dir  string
		args []string
	}{
		{"python/http", "python", []string{".venv/bin/python", "producer.py", "http"}},
		{"python/ws", "python", []string{".venv/bin/python", "producer.py", "ws"}},
		{"python/mqtt", "python", []string{".venv/bin/python", "producer.py", "mqtt"}},
		{"node/http", "node", []string{"node", "dist/producer.js", "http"}},
		{"node/ws", "node", []string{"node", "dist/producer.js", "ws"}},
		{"node/mqtt", "node", []string{"node", "dist/producer.js", "mqtt"}}, // QoS 0, as mqtt.js defaults
		{"go/http", "go", []string{filepath.Join(bin, "go-producer"), "http"}},
		{"go/mqtt", "go", []string{filepath.Join(bin, "go-producer"), "mqtt"}},
		{"go/grpc", "go", []string{filepath.Join(bin, "go-producer"), "grpc"}},
		{"java/http", "java", []string{"java", "-jar", "target/producer.jar", "http"}},
		{"java/mqtt", "java", []string{"java", "-jar", "target/producer.jar", "mqtt"}},
		{"c/http-protobuf", "c", []string{"./build/producer"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := p.NewDevice(admin, "example-"+strings.ReplaceAll(tc.name, "/", "-"), "double")
			cmd := exec.Command(tc.args[0], tc.args[1:]...)
			cmd.Dir = filepath.Join(ex, tc.dir)
			cmd.Env = append(os.Environ(), "IOT_DEVICE_ID="+d.ID, "IOT_DEVICE_KEY="+d.Token, "IOT_SENSOR_ID="+d.SensorID,
				"IOT_COUNT=3", "IOT_INTERVAL=0", "IOT_API="+p.URL(), "IOT_HTTP_URL=http://"+p.HTTP+"/",
				"IOT_WS_URL=ws://"+p.WS+"/", "IOT_MQTT_URL=mqtt://"+p.MQTT, "IOT_TOKEN=", "IOT_PROTOCOL=")
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", strings.Join(tc.args, " "), err, out)
			}
			t.Logf("%s ran in %v:\n%s", tc.name, time.Since(start).Round(time.Millisecond), out)
			got := readBack(t, p, admin, d.SensorID, 3)
			if strings.Join(got, ",") != "20,20.5,21" {
				t.Fatalf("sensor %s readings %v, want 20, 20.5, 21\n%s", d.SensorID, got, out)
			}
		})
	}
	// A refused key is reported and fails the producer.
	t.Run("c/refused", func(t *testing.T) {
		d := p.NewDevice(admin, "example-refused", "double")
		cmd := exec.Command("./build/producer", "--key", "not-a-key", "--sensor-id", d.SensorID, "--url", "http://"+p.HTTP+"/")
		cmd.Dir = filepath.Join(ex, "c")
		out, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(out), "HTTP 403") {
			t.Fatalf("bad key: %v\n%s", err, out)
		}
	})
	// examples/README.md's commands make the device a producer pushes as.
	t.Run("readme", func(t *testing.T) {
		py := filepath.Join(ex, "python")
		block := bashBlock(t, "examples/README.md", "## A device to push as") +
			py + "/.venv/bin/python " + py + "/producer.py http --count 2 --interval 0\necho sensor=$IOT_SENSOR_ID\n"
		out := runDocBlock(t, p, block)
		i := strings.LastIndex(out, "sensor=")
		if i < 0 {
			t.Fatalf("no sensor id printed:\n%s", out)
		}
		sensor := strings.TrimSpace(out[i+len("sensor="):])
		if got := readBack(t, p, admin, sensor, 2); strings.Join(got, ",") != "20,20.5" {
			t.Fatalf("sensor %s readings %v, want 20, 20.5\n%s", sensor, got, out)
		}
	})
}

// readBack polls the Query API until the sensor has want readings (QoS 0
// MQTT has no ack to wait for) and returns their values, sorted.
func readBack(t *testing.T, p *Platform, token, sensor string, want int) []string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := p.Do("GET", "/api/sensors/"+sensor+"/readings?limit=100", token, nil)
		list, _ := r.JSON["readings"].([]any)
		if len(list) >= want || time.Now().After(deadline) {
			var vals []string
			for _, x := range list {
				vals = append(vals, fmt.Sprint(x.(map[string]any)["double_value"]))
			}
			sort.Strings(vals)
			return vals
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stale reports whether out (relative to dir) is missing or older than any
// file under the sources.
func stale(dir, out string, sources []string) bool {
	fi, err := os.Stat(filepath.Join(dir, out))
	if err != nil {
		return true
	}
	newer := false
	for _, src := range sources {
		_ = filepath.Walk(filepath.Join(dir, src), func(_ string, info os.FileInfo, err error) error {
			if err == nil && info.ModTime().After(fi.ModTime()) {
				newer = true
			}
			return nil
		})
	}
	return newer
}
