// Package e2e starts the built iotplatform binary and drives it the way users
// do: REST with curl-like requests, Connect/gRPC/gRPC-Web clients, and (in
// the ingestion and query tests) the device protocols.
package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the iotplatform binary built once for the whole package;
// iotctl the CLI.
var binary, iotctl string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode (these tests build and start the binary)")
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "iotplatform-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, iotctl = filepath.Join(dir, "iotplatform"), filepath.Join(dir, "iotctl")
	for out, pkg := range map[string]string{binary: "../cmd/iotplatform", iotctl: "../cmd/iotctl"} {
		build := exec.Command("go", "build", "-o", out, pkg)
		build.Stdout, build.Stderr = os.Stdout, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build", pkg+":", err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// Platform is one running iotplatform process.
type Platform struct {
	t       *testing.T
	DataDir string
	// Addresses (host:port) of the servers.
	API, HTTP, WS, MQTT string
	// AdminPassword is root's password.
	AdminPassword string
	// Args are extra flags given to `serve`.
	Args []string
	Env  []string

	generated bool
	prefix    []string
	// roots trust the server certificate when the platform serves TLS.
	roots *x509.CertPool

	mu   sync.Mutex
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan error
}

// Options tune a platform started by Start.
type Options struct {
	// Args are extra `serve` flags, e.g. --kafka-brokers.
	Args []string
	// Env are extra environment variables (KEY=VALUE).
	Env []string
	// DataDir reuses a data dir (restart tests); empty makes a new one.
	DataDir string
	// AdminPassword; empty picks a random one given via IOT_ADMIN_PASSWORD.
	AdminPassword string
	// GeneratedPassword leaves IOT_ADMIN_PASSWORD unset so the platform
	// generates one (read it from <data-dir>/admin-password).
	GeneratedPassword bool
	// Prefix runs the binary through a command that execs it (same pid),
	// e.g. prlimit --nofile=1024:1024.
	Prefix []string
	// TLSRoots trusts the server certificate of a platform started with TLS
	// flags in Args: URL becomes https:// and Client trusts these roots.
	TLSRoots *x509.CertPool
}

// Start runs the binary on free loopback ports and waits until /readyz is OK.
func Start(t *testing.T, o Options) *Platform {
	t.Helper()
	p := &Platform{t: t, DataDir: o.DataDir, Args: o.Args, Env: o.Env, AdminPassword: o.AdminPassword, generated: o.GeneratedPassword, prefix: o.Prefix, roots: o.TLSRoots}
	if p.DataDir == "" {
		p.DataDir = t.TempDir()
	}
	if p.AdminPassword == "" && !p.generated {
		p.AdminPassword = "pw-" + randHex(8)
	}
	addrs := freeAddrs(t, 4)
	p.API, p.HTTP, p.WS, p.MQTT = addrs[0], addrs[1], addrs[2], addrs[3]
	p.start()
	t.Cleanup(p.Stop)
	return p
}

func (p *Platform) start() {
	t := p.t
	t.Helper()
	args := append([]string{"serve", "--data-dir", p.DataDir, "--api-addr", p.API, "--http-addr", p.HTTP,
		"--ws-addr", p.WS, "--mqtt-addr", p.MQTT, "--log-format", "text", "--auth-cache-ttl", "200ms"}, p.Args...)
	cmd := exec.Command(binary, args...)
	if len(p.prefix) > 0 {
		cmd = exec.Command(p.prefix[0], append(append(p.prefix[1:len(p.prefix):len(p.prefix)], binary), args...)...)
	}
	cmd.Env = os.Environ()
	if !p.generated {
		cmd.Env = append(cmd.Env, "IOT_ADMIN_PASSWORD="+p.AdminPassword)
	}
	cmd.Env = append(cmd.Env, p.Env...)
	p.logs = &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = &syncWriter{w: p.logs, mu: &p.mu}, &syncWriter{w: p.logs, mu: &p.mu}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start iotplatform: %v", err)
	}
	p.cmd = cmd
	p.done = make(chan error, 1)
	go func() { p.done <- cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := p.Client().Get(p.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("iotplatform exited during start: %v\n%s", err, p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-p.done
			t.Fatalf("iotplatform not ready after 60s\n%s", p.Logs())
		}
	}
}

// Logs returns everything the process printed so far.
func (p *Platform) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

// Stop sends SIGTERM and waits for a graceful exit.
func (p *Platform) Stop() {
	if p.cmd == nil || p.cmd.ProcessState != nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("iotplatform exited with %v after SIGTERM\n%s", err, p.Logs())
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Errorf("iotplatform did not stop within 30s of SIGTERM\n%s", p.Logs())
	}
	if p.t.Failed() {
		p.t.Logf("iotplatform logs:\n%s", tail(p.Logs(), 60))
	}
}

// Kill sends SIGKILL (a crash) and waits for the process to die.
func (p *Platform) Kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// Restart starts the process again on the same data dir and ports.
func (p *Platform) Restart() {
	p.t.Helper()
	p.start()
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

type syncWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// freeAddrs returns n distinct free loopback addresses. The listeners stay
// open until all are chosen, so the kernel cannot hand out one port twice.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		out = append(out, ln.Addr().String())
	}
	return out
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// URL returns the API base URL.
func (p *Platform) URL() string {
	if p.roots != nil {
		return "https://" + p.API
	}
	return "http://" + p.API
}

// Client returns an HTTP client for the platform's API (trusting its TLS
// roots when it serves TLS).
func (p *Platform) Client() *http.Client {
	if p.roots == nil {
		return http.DefaultClient
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.roots}, ForceAttemptHTTP2: true}}
}

// Response is a decoded REST answer.
type Response struct {
	Status int
	Body   []byte
	JSON   map[string]any
}

// Str returns a string field by dotted path (e.g. "result.id").
func (r Response) Str(path string) string {
	var v any = r.JSON
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = m[k]
	}
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// Do sends a REST request with a lowercase `authorization` header (as the
// original Node.js clients do) and decodes a JSON object body.
func (p *Platform) Do(method, path, token string, body any) Response {
	p.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, p.URL()+path, rd)
	if err != nil {
		p.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header["authorization"] = []string{"Bearer " + token}
	}
	resp, err := p.Client().Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	out := Response{Status: resp.StatusCode}
	out.Body, _ = io.ReadAll(resp.Body)
	_ = json.Unmarshal(out.Body, &out.JSON)
	return out
}

// SignIn returns a user token for username/password (fails the test otherwise).
func (p *Platform) SignIn(username, password string) string {
	p.t.Helper()
	r := p.Do("POST", "/api/users/signin", "", map[string]string{"username": username, "password": password})
	if r.Status != 200 || r.Str("token") == "" {
		p.t.Fatalf("sign in %s: %d %s", username, r.Status, r.Body)
	}
	return r.Str("token")
}

// AdminToken signs in as root.
func (p *Platform) AdminToken() string { return p.SignIn("root", p.AdminPassword) }

// Device is a device with one sensor and its key, created through REST.
type Device struct {
	ID, SensorID, Token string
}

// NewDevice creates a device (owned by the token's user) with one sensor of
// the given type and fetches the device key.
func (p *Platform) NewDevice(userToken, name, valueType string) Device {
	p.t.Helper()
	d := p.Do("POST", "/api/devices/", userToken, map[string]string{"name": name, "description": "e2e"})
	if d.Status != 200 {
		p.t.Fatalf("create device: %d %s", d.Status, d.Body)
	}
	id := d.Str("result.id")
	s := p.Do("POST", "/api/devices/"+id+"/sensors/", userToken, map[string]string{"name": name + "-sensor", "mapping": `{"type":"` + valueType + `"}`})
	if s.Status != 200 {
		p.t.Fatalf("create sensor: %d %s", s.Status, s.Body)
	}
	k := p.Do("GET", "/api/devices/"+id+"/key", userToken, nil)
	if k.Status != 200 {
		p.t.Fatalf("device key: %d %s", k.Status, k.Body)
	}
	return Device{ID: id, SensorID: s.Str("id"), Token: k.Str("token")}
}
