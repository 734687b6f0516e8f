// Package inproc runs iotplatform inside a benchmark's own process, built
// by the app package's own constructor (app.New) from the same Config as
// `iotplatform serve`, on a fresh data directory and free loopback ports.
// Benchmarks that measure the platform in their own process use it instead
// of wiring services and gateways themselves; Provision creates what they
// drive through the public API, for the in-process platform and for a
// running binary alike.
package inproc

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/iotplatform/iotplatform/app"
)

// Platform is one in-process iotplatform.
type Platform struct {
	// API is the API base URL (http://127.0.0.1:port).
	API string
	// Password is root's.
	Password string

	app    *app.App
	dir    string
	cancel context.CancelFunc
	done   chan error
}

// Start builds and starts the platform with serve's flags in args on top of
// embedded defaults: a temporary data directory, every listener on a free
// loopback port, logs at warn level on stderr. opts are app.New's (e.g.
// app.WithBus for an instant in-memory sink). It returns once every
// listener is bound.
func Start(args []string, opts ...app.Option) (*Platform, error) {
	dir, err := os.MkdirTemp("", "iot-inproc-")
	if err != nil {
		return nil, err
	}
	base := []string{"--data-dir", dir, "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--ws-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--log-level", "warn"}
	cfg, err := app.ParseConfig(append(base, args...)...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	pw := make([]byte, 8)
	_, _ = rand.Read(pw)
	cfg.Core.AdminPassword = "bench-" + hex.EncodeToString(pw)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := app.New(log, cfg, opts...)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Platform{Password: cfg.Core.AdminPassword, app: a, dir: dir, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-p.done:
		cancel()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("platform did not start: %w", err)
	}
	p.API = "http://" + a.Addr("api")
	return p, nil
}

// Addr is the bound address of a listener: api, http, ws or mqtt.
func (p *Platform) Addr(listener string) string { return p.app.Addr(listener) }

// Close stops the platform and removes its data directory.
func (p *Platform) Close() {
	p.cancel()
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
	}
	os.RemoveAll(p.dir)
}

// Device is what Provision created: a device, its token and its sensors.
type Device struct {
	ID      string
	Token   string
	Sensors []string
}

// Provision signs in to the platform at api as root and creates a device
// with n sensors of type typ ("double", "string", ...), returning the
// device's id, token and sensor ids. It works against any running
// platform (in-process or a binary) through REST.
func Provision(api, password string, n int, typ string) (Device, error) {
	call := func(method, path, token string, in any) (map[string]any, error) {
		var rd io.Reader
		if in != nil {
			b, _ := json.Marshal(in)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, api+path, rd)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("%s %s: %d %v", method, path, resp.StatusCode, out)
		}
		return out, nil
	}
	var d Device
	signin, err := call("POST", "/api/users/signin", "", map[string]string{"username": "root", "password": password})
	if err != nil {
		return d, err
	}
	admin, _ := signin["token"].(string)
	dev, err := call("POST", "/api/devices/", admin, map[string]string{"name": "bench", "description": "benchmark device"})
	if err != nil {
		return d, err
	}
	res, _ := dev["result"].(map[string]any)
	d.ID = fmt.Sprint(res["id"])
	for i := range n {
		s, err := call("POST", "/api/devices/"+d.ID+"/sensors/", admin, map[string]string{"name": fmt.Sprintf("bench-sensor-%d", i), "mapping": `{"type":"` + typ + `"}`})
		if err != nil {
			return d, err
		}
		d.Sensors = append(d.Sensors, fmt.Sprint(s["id"]))
	}
	key, err := call("GET", "/api/devices/"+d.ID+"/key", admin, nil)
	if err != nil {
		return d, err
	}
	d.Token, _ = key["token"].(string)
	return d, nil
}

// SignIn signs in to the platform at api as root and returns the token.
func SignIn(api, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": "root", "password": password})
	resp, err := http.Post(api+"/api/users/signin", "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("sign in: HTTP %d (%v)", resp.StatusCode, err)
	}
	return out.Token, nil
}
