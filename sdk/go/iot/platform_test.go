package iot_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The SDK is its own module and must not import the server, so its tests
// and examples run against the built binary: $IOT_BIN, or cmd/iotplatform
// of this repository built once into a temporary directory.

// baseURL and password are the platform the examples talk to (TestMain
// starts it); in your code they are your API URL and credentials.
var (
	baseURL  = "http://localhost:8080"
	password = os.Getenv("IOT_ADMIN_PASSWORD")
)

const testPassword = "sdk-test-password"

var binary string

func TestMain(m *testing.M) {
	code, err := runTests(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func runTests(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "iot-sdk-go-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	binary = os.Getenv("IOT_BIN")
	if binary == "" {
		binary = filepath.Join(dir, "iotplatform")
		build := exec.Command("go", "build", "-o", binary, "./cmd/iotplatform")
		build.Dir = filepath.Join("..", "..", "..")
		if out, err := build.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("build the platform: %v\n%s", err, out)
		}
	}
	p, err := start(dir)
	if err != nil {
		return 0, err
	}
	defer p.stop()
	baseURL, password = p.url, testPassword
	return m.Run(), nil
}

type platform struct {
	url  string
	cmd  *exec.Cmd
	logs *strings.Builder
	done chan struct{}
}

// start runs the binary on free loopback ports and waits for /readyz.
func start(dir string, extra ...string) (*platform, error) {
	data, err := os.MkdirTemp(dir, "data-")
	if err != nil {
		return nil, err
	}
	addrs, err := freeAddrs(4)
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data-dir", data, "--api-addr", addrs[0], "--http-addr", addrs[1],
		"--ws-addr", addrs[2], "--mqtt-addr", addrs[3]}, extra...)
	p := &platform{url: "http://" + addrs[0], cmd: exec.Command(binary, args...), logs: &strings.Builder{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "IOT_ADMIN_PASSWORD="+testPassword)
	w := &lockedWriter{b: p.logs}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-p.done:
			return nil, fmt.Errorf("platform exited: %s", w.String())
		default:
		}
		resp, err := http.Get(p.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p, nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("platform not ready in 30s: %s", w.String())
}

func (p *platform) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// startPlatform starts a platform of its own for one test.
func startPlatform(t *testing.T, extra ...string) string {
	t.Helper()
	p, err := start(t.TempDir(), extra...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	return p.url
}

func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		out = append(out, l.Addr().String())
	}
	return out, nil
}

type lockedWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
