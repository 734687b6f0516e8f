package app

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func TestConsoleRoutes(t *testing.T) {
	a := &App{api: http.NewServeMux(), cfg: Config{Console: ConsoleConfig{Enabled: true}}}
	a.cfg.Ingest.HTTP.Addr, a.cfg.Ingest.MQTT.Addr = "127.0.0.1:18083", ":1883"
	a.api.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("metrics")) })
	if _, err := a.initConsole(context.Background()); err != nil {
		t.Fatal(err)
	}
	get := func(path, enc string) *http.Response {
		req := httptest.NewRequest("GET", path, nil)
		if enc != "" {
			req.Header.Set("Accept-Encoding", enc)
		}
		w := httptest.NewRecorder()
		a.api.ServeHTTP(w, req)
		return w.Result()
	}
	for _, p := range []string{"/", "/devices", "/devices/12", "/consumers/3", "/users", "/signin", "/charts", "/deadletters"} {
		r := get(p, "")
		body, _ := io.ReadAll(r.Body)
		if r.StatusCode != 200 || !strings.Contains(string(body), "<!doctype html>") {
			t.Errorf("%s: %d %.60q", p, r.StatusCode, body)
		}
		if csp := r.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s: Cache-Control %q", p, cc)
		}
		if !strings.Contains(string(body), `content="{&#34;http&#34;:&#34;18083&#34;,&#34;mqtt&#34;:&#34;1883&#34;`) {
			t.Errorf("%s: settings not in index.html: %s", p, body)
		}
	}
	for _, p := range []string{"/nothing", "/api2", "/devicesx", "/assets/nope.js"} {
		if r := get(p, ""); r.StatusCode != 404 {
			t.Errorf("%s: %d, want 404", p, r.StatusCode)
		}
	}
	if r := get("/metrics", ""); r.StatusCode != 200 {
		t.Errorf("/metrics: %d", r.StatusCode)
	}
	// The bundle: immutable caching, gzip when accepted.
	idx := get("/", "")
	body, _ := io.ReadAll(idx.Body)
	i := strings.Index(string(body), `src="/assets/app-`) + len(`src="`)
	js := string(body)[i : i+strings.Index(string(body)[i:], `"`)]
	r := get(js, "br, gzip")
	if r.StatusCode != 200 || r.Header.Get("Content-Encoding") != "gzip" || !strings.Contains(r.Header.Get("Cache-Control"), "immutable") || !strings.HasPrefix(r.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("%s: %d %v", js, r.StatusCode, r.Header)
	}
	if r := get(js, ""); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip sent without Accept-Encoding")
	}
}

func TestConsoleDisabled(t *testing.T) {
	a := &App{api: http.NewServeMux()}
	if files, err := a.initConsole(context.Background()); err != nil || files != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	a.api.ServeHTTP(w, httptest.NewRequest("GET", "/devices", nil))
	if w.Code != 404 {
		t.Errorf("--console=false still serves /devices: %d", w.Code)
	}
}

func TestLoadConsoleNeedsIndex(t *testing.T) {
	if _, err := loadConsole(fstest.MapFS{"assets/a.js": {Data: []byte("x")}}, nil); err == nil {
		t.Error("a dist without index.html loaded")
	}
}
