package authn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"sync"
	"testing"
	"time"
)

// swappableKeys serves keys' public keys until told to drop them or to
// answer another key under the same kid.
type swappableKeys struct {
	KeySource
	mu    sync.Mutex
	gone  bool
	other ed25519.PublicKey
}

func (s *swappableKeys) PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.gone:
		return nil, errors.New("unknown kid")
	case s.other != nil:
		return s.other, nil
	}
	return s.KeySource.PublicKey(ctx, kid)
}

// TestAuthenticate_ReusedSignatureStillHonoursKeysRevocationAndExpiry: a
// token re-checked after the cache TTL reuses its verified signature only
// while the key source still serves the same key for its kid; the
// generation (revocation) and the expiry are checked as before.
func TestAuthenticate_ReusedSignatureStillHonoursKeysRevocationAndExpiry(t *testing.T) {
	keys := newKeys(t)
	_, otherPriv, _ := ed25519.GenerateKey(rand.Reader)
	for _, tc := range []struct {
		name   string
		change func(src *swappableKeys, gens *fakeGens)
	}{
		{"key removed", func(src *swappableKeys, _ *fakeGens) { src.mu.Lock(); src.gone = true; src.mu.Unlock() }},
		{"kid now names another key", func(src *swappableKeys, _ *fakeGens) {
			src.mu.Lock()
			src.other = otherPriv.Public().(ed25519.PublicKey)
			src.mu.Unlock()
		}},
		{"token revoked", func(_ *swappableKeys, gens *fakeGens) { gens.set(KindDevice, 7, 1) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &swappableKeys{KeySource: keys}
			gens := &fakeGens{}
			gens.set(KindDevice, 7, 0)
			v := NewVerifier(src, gens, VerifierConfig{CacheTTL: time.Second})
			now := time.Now()
			v.now = func() time.Time { return now }
			tok, _ := NewSigner(keys).Issue(Principal{Kind: KindDevice, ID: 7}, 0, 0)
			for range 3 { // verified, then re-checked after each TTL
				if _, err := v.Authenticate(context.Background(), tok); err != nil {
					t.Fatal(err)
				}
				now = now.Add(2 * time.Second)
			}
			tc.change(src, gens)
			if _, err := v.Authenticate(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("after the change the token must fail, got %v", err)
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		gens := &fakeGens{}
		gens.set(KindDevice, 7, 0)
		v := NewVerifier(keys, gens, VerifierConfig{CacheTTL: time.Second})
		s := NewSigner(keys)
		now := time.Now()
		v.now, s.now = func() time.Time { return now }, func() time.Time { return now }
		tok, _ := s.Issue(Principal{Kind: KindDevice, ID: 7}, 0, 5*time.Second)
		if _, err := v.Authenticate(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
		now = now.Add(6 * time.Second)
		if _, err := v.Authenticate(context.Background(), tok); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("an expired token with a remembered signature must fail as expired, got %v", err)
		}
	})
}
