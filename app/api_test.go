package app

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestReadyz answers 503 naming the failing check, 200 when all pass.
func TestReadyz(t *testing.T) {
	a := &App{log: slog.New(slog.NewTextHandler(io.Discard, nil)), readyChecks: map[string]func(context.Context) error{
		"registry": func(context.Context) error { return nil },
	}}
	w := httptest.NewRecorder()
	a.readyz(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 200 {
		t.Fatalf("all checks pass: %d %s", w.Code, w.Body)
	}
	a.readyChecks["kafka"] = func(context.Context) error { return errors.New("dial tcp 10.0.0.1:9092: refused") }
	w = httptest.NewRecorder()
	a.readyz(w, httptest.NewRequest("GET", "/readyz", nil))
	if w.Code != 503 || !strings.Contains(w.Body.String(), `"kafka"`) || strings.Contains(w.Body.String(), "10.0.0.1") {
		t.Fatalf("failing check: %d %s (want 503 naming kafka, without the cause)", w.Code, w.Body)
	}
}

// TestTrimSlash keeps the original API's trailing slashes working.
func TestTrimSlash(t *testing.T) {
	var got string
	h := trimSlash(httpHandlerFunc(func(path string) { got = path }))
	for in, want := range map[string]string{"/api/devices/": "/api/devices", "/api/devices": "/api/devices", "/": "/"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", in, nil))
		if got != want {
			t.Errorf("%s -> %s, want %s", in, got, want)
		}
	}
}

type httpHandlerFunc func(path string)

func (f httpHandlerFunc) ServeHTTP(_ http.ResponseWriter, r *http.Request) { f(r.URL.Path) }
