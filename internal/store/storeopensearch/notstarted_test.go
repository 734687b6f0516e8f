package storeopensearch_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// notStarted is OpenSearch's answer to a search that reaches an index whose
// shards have not started yet (just created).
const notStarted = `{"error":{"root_cause":[],"type":"search_phase_execution_exception","reason":"all shards failed","phase":"query","grouped":true,"failed_shards":[]},"status":503}`

// TestSearch_ShardsNotStartedYetIsRetried: searches answered "all shards
// failed" for 300 ms (a day index the pipeline has just created, its shard
// not started) are retried, spaced out, and succeed once the shards answer
// (back-to-back retries all fell inside such a window: e2e failover test);
// when the 503 does not pass, the error comes back within the retry bound.
func TestSearch_ShardsNotStartedYetIsRetried(t *testing.T) {
	node := testenv.OpenSearchURL(t)
	target, err := url.Parse(node)
	if err != nil {
		t.Fatal(err)
	}
	var refuseUntil atomic.Int64 // unix ns: searches before it are refused
	var refused atomic.Int64
	rp := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/_search") && time.Now().UnixNano() < refuseUntil.Load() {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, notStarted)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	prefix := fmt.Sprintf("test-notstarted-%d", rand.Int64N(1<<40))
	dropOnCleanup(t, prefix)
	ctx := context.Background()
	s, err := storeopensearch.Open(ctx, slog.New(slog.DiscardHandler), storeopensearch.Config{URLs: []string{srv.URL}, Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UnixNano()
	if err := s.Write(ctx, []store.Reading{{DeviceID: 1, SensorID: 7, TimeNS: now, Value: store.Value{Kind: store.KindDouble, Double: 4.5}, Protocol: "http"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}

	refuseUntil.Store(time.Now().Add(300 * time.Millisecond).UnixNano())
	got, err := s.Latest(ctx, []int64{7})
	if err != nil || len(got) != 1 || got[0].Value.Double != 4.5 {
		t.Fatalf("Latest after 300 ms of not-started answers = %v, %v; want the reading", got, err)
	}
	if refused.Load() < 2 {
		t.Fatalf("the proxy refused %d searches; the test did not test the retry", refused.Load())
	}

	refuseUntil.Store(time.Now().Add(time.Hour).UnixNano())
	start := time.Now()
	if _, err := s.Latest(ctx, []int64{7}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Latest while shards never start = %v, want the 503", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("gave up after %v, want within the ~0.75 s retry bound", d)
	}
}
