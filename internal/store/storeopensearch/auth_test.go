package storeopensearch_test

import (
	"context"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// authProxy is an HTTPS server with its own CA that requires basic auth and
// forwards authorised requests to the real test node (which has no security
// plugin).
type authProxy struct {
	srv              *httptest.Server
	caFile           string
	allowed, refused atomic.Int64
}

func newAuthProxy(t *testing.T, user, pass string) *authProxy {
	t.Helper()
	target, err := url.Parse(testenv.OpenSearchURL(t))
	if err != nil {
		t.Fatal(err)
	}
	p := &authProxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, pw, ok := r.BasicAuth()
		if !ok || u != user || pw != pass {
			p.refused.Add(1)
			w.Header().Set("WWW-Authenticate", `Basic realm="opensearch"`)
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		p.allowed.Add(1)
		r.Header.Del("Authorization")
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	p.caFile = filepath.Join(t.TempDir(), "ca.pem")
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(p.caFile, crt, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAuth_BasicAuthAndCustomCA runs the store through an HTTPS proxy with a
// private CA that demands basic auth: with the CA file and the credentials
// it works end to end against the real node; without either it refuses
// with a clear error.
func TestAuth_BasicAuthAndCustomCA(t *testing.T) {
	const user, pass = "iot", "s3cret-os-pass"
	p := newAuthProxy(t, user, pass)
	node := testenv.OpenSearchURL(t)
	prefix := fmt.Sprintf("test-auth-%d", rand.Int64N(1<<40))
	dropOnCleanup(t, prefix)
	ctx := context.Background()
	log := slog.New(slog.DiscardHandler)
	cfg := storeopensearch.Config{URLs: []string{p.srv.URL}, Prefix: prefix, Username: user, Password: pass, CAFile: p.caFile}

	t.Run("credentials and CA", func(t *testing.T) {
		s, err := storeopensearch.Open(ctx, log, cfg)
		if err != nil {
			t.Fatalf("Open through the authenticating proxy: %v", err)
		}
		defer s.Close()
		if err := s.Ping(ctx); err != nil {
			t.Fatal(err)
		}
		if p.allowed.Load() == 0 || p.refused.Load() != 0 {
			t.Fatalf("proxy saw %d authorised and %d refused requests; want every request authorised", p.allowed.Load(), p.refused.Load())
		}
		// The template really reached the node behind the proxy.
		res, err := http.Get(node + "/_index_template/" + prefix + "-readings")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			t.Fatalf("index template on the node: %s", res.Status)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		bad := cfg
		bad.Password = "wrong"
		_, err := storeopensearch.Open(ctx, log, bad)
		if err == nil || !strings.Contains(err.Error(), "401") {
			t.Fatalf("Open with a wrong password = %v, want a 401 error", err)
		}
		if strings.Contains(err.Error(), "wrong") && strings.Contains(err.Error(), "password=") {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
	t.Run("without the CA", func(t *testing.T) {
		bad := cfg
		bad.CAFile = ""
		_, err := storeopensearch.Open(ctx, log, bad)
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Open without the CA file = %v, want a certificate error", err)
		}
	})
	t.Run("CA file without a certificate", func(t *testing.T) {
		bad := cfg
		bad.CAFile = filepath.Join(t.TempDir(), "empty.pem")
		if err := os.WriteFile(bad.CAFile, []byte("not a pem"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := storeopensearch.Open(ctx, log, bad); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Fatalf("Open = %v, want a CA file error", err)
		}
	})
}
