package app

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestReadiness_FailingCheckIsAMetricAndALogLineWithTheRequestID: a
// failing readiness check turns iot_ready and iot_readiness_check_ok to 0,
// and the "not ready" line logged while answering /readyz carries the
// caller's request id.
func TestReadiness_FailingCheckIsAMetricAndALogLineWithTheRequestID(t *testing.T) {
	cfg, err := ParseConfig("--roles", "core", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Core.AdminPassword = "admin-password-1"
	var logs lockedBuffer
	a, err := New(slog.New(slog.NewJSONHandler(&logs, nil)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.readyChecks["probe"] = func(context.Context) error { return errors.New("probe down") }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	defer func() { cancel(); <-done }()
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("Run: %v\n%s", err, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatal("not listening after 30s")
	}
	base := "http://" + a.Addr("api")
	req, _ := http.NewRequest("GET", base+"/readyz", nil)
	req.Header.Set("X-Request-Id", "probe-req-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("X-Request-Id") != "probe-req-1" {
		t.Fatalf("/readyz: %d, X-Request-Id %q", resp.StatusCode, resp.Header.Get("X-Request-Id"))
	}
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "not ready" && m["check"] == "probe" {
			found = true
			if m["request_id"] != "probe-req-1" {
				t.Errorf("not-ready line without the request id: %s", line)
			}
		}
	}
	if !found {
		t.Fatalf("no not-ready log line:\n%s", logs.String())
	}
	resp, err = http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"\niot_ready 0\n", "\niot_readiness_check_ok{check=\"probe\"} 0\n", "\niot_readiness_check_ok{check=\"disk\"} 1\n", "\niot_data_dir_free_bytes "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}
