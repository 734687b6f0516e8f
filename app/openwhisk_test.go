package app

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/iotplatform/iotplatform/internal/limits"
)

// TestOpenWhisk_ClientAddrFromTheWebActionHeaders: every /run comes from
// the invoker, so the per-address sign-in throttles must see the web
// caller's address (the right-most X-Forwarded-For hop OpenWhisk's edge
// wrote into __ow_headers), not the invoker's — else one unauthenticated
// caller's failed sign-ins throttle everybody's.
func TestOpenWhisk_ClientAddrFromTheWebActionHeaders(t *testing.T) {
	var got []string
	next := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, limits.ClientAddr(r.Context()))
	})
	h := limits.Guard(limits.GuardConfig{Name: "api"}, nil, newOpenWhiskAction(slog.New(slog.NewTextHandler(io.Discard, nil)), limits.Proxies{}, next))
	run := func(headers string) {
		body := `{"value":{"__ow_method":"post","__ow_path":"/api/users/signin","__ow_headers":` + headers + `,"username":"a","password":"b"}}`
		r := httptest.NewRequest(http.MethodPost, "/run", strings.NewReader(body))
		r.RemoteAddr = "10.1.2.3:4567" // the invoker
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
	run(`{"x-forwarded-for":"198.51.100.9, 203.0.113.7"}`) // the left hop is whatever the client wrote
	run(`{"x-forwarded-for":"203.0.113.8"}`)
	run(`{}`)
	want := []string{"203.0.113.7", "203.0.113.8", "10.1.2.3"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("client addresses seen behind /run: %q, want %q", got, want)
	}
}
