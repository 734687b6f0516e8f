package authn

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// JWKSSource fetches verification keys from Core's /.well-known/jwks.json,
// for gateways running in another process. Keys are cached and the whole set
// is re-read every maxAge (so a key removed from Core stops verifying); an
// unknown kid triggers a refresh, at most once per minRefresh.
type JWKSSource struct {
	url        string
	client     *http.Client
	minRefresh time.Duration
	maxAge     time.Duration
	now        func() time.Time

	mu      sync.Mutex
	keys    map[string]ed25519.PublicKey
	fetched time.Time
}

// NewJWKSSource returns a source reading url.
func NewJWKSSource(url string, client *http.Client) *JWKSSource {
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	return &JWKSSource{url: url, client: client, minRefresh: 10 * time.Second, maxAge: time.Minute, now: time.Now}
}

// PublicKey implements KeySource.
func (s *JWKSSource) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	age := s.now().Sub(s.fetched)
	if k, ok := s.keys[kid]; ok && age < s.maxAge {
		return k, nil
	}
	if s.keys == nil || age >= s.minRefresh {
		keys, err := s.fetch(ctx)
		s.fetched = s.now()
		switch {
		case err == nil:
			s.keys = keys
		case s.keys == nil:
			return nil, err
		}
		// On a failed refresh the previous set stays: Core being briefly
		// unreachable must not stop every gateway.
	}
	if k, ok := s.keys[kid]; ok {
		return k, nil
	}
	return nil, ErrUnknownKey
}

func (s *JWKSSource) fetch(ctx context.Context) (map[string]ed25519.PublicKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return nil, fmt.Errorf("jwks request: %w", err)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("read jwks: %w", err)
	}
	return ParseJWKS(b)
}
