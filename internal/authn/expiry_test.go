package authn

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
)

// TestAuthenticate_ExpiryIsEnforcedAndNamed checks `exp` on every kind: a
// token past its expiry is refused as ErrTokenExpired (also when it was
// cached while valid), and the edges say "token expired" with 401.
func TestAuthenticate_ExpiryIsEnforcedAndNamed(t *testing.T) {
	keys := newKeys(t)
	gens := &fakeGens{}
	gens.set(KindUser, 1, 0)
	gens.set(KindDevice, 7, 3)
	gens.set(KindConsumer, 9, 1)
	signer := NewSigner(keys)
	clock := time.Now()
	v := NewVerifier(keys, gens, VerifierConfig{CacheTTL: time.Hour})
	v.now = func() time.Time { return clock }
	signer.now = v.now

	user, _ := signer.Issue(Principal{Kind: KindUser, ID: 1}, 0, 15*time.Minute)
	device, _ := signer.Issue(Principal{Kind: KindDevice, ID: 7}, 3, 24*time.Hour)
	consumer, _ := signer.Issue(Principal{Kind: KindConsumer, ID: 9}, 1, time.Hour)
	forever, _ := signer.Issue(Principal{Kind: KindDevice, ID: 7}, 3, 0)
	for _, tok := range []string{user, device, consumer, forever} {
		if _, err := v.Authenticate(context.Background(), tok); err != nil { // cached while valid
			t.Fatal(err)
		}
	}
	clock = clock.Add(16 * time.Minute)
	if _, err := v.Authenticate(context.Background(), user); !errors.Is(err, ErrTokenExpired) || !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("expired cached user token: %v", err)
	}
	if _, err := v.Authenticate(context.Background(), device); err != nil {
		t.Fatalf("device key within its day: %v", err)
	}
	clock = clock.Add(24 * time.Hour)
	for name, tok := range map[string]string{"device": device, "consumer": consumer} {
		if _, err := v.Authenticate(context.Background(), tok); !errors.Is(err, ErrTokenExpired) {
			t.Fatalf("expired %s key: %v", name, err)
		}
	}
	// A fresh verifier (nothing cached) says the same.
	v2 := NewVerifier(keys, gens, VerifierConfig{})
	v2.now = v.now
	if _, err := v2.Authenticate(context.Background(), device); !errors.Is(err, ErrTokenExpired) {
		t.Fatalf("expired device key, uncached: %v", err)
	}
	if _, err := v2.Authenticate(context.Background(), forever); err != nil {
		t.Fatalf("a key without expiry stopped working: %v", err)
	}

	// REST: 401 with a message that says why.
	h := Middleware(v2, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/api/me", nil)
	req.Header.Set("Authorization", "Bearer "+user)
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized || !strings.Contains(rec.Body.String(), `"message":"token expired"`) {
		t.Fatalf("REST answer to an expired token: %d %s", rec.Code, rec.Body)
	}
	// Connect/gRPC: Unauthenticated "token expired".
	_, err := interceptor{v2}.authenticate(context.Background(), http.Header{"Authorization": {"Bearer " + user}})
	if connect.CodeOf(err) != connect.CodeUnauthenticated || !strings.Contains(err.Error(), "token expired") {
		t.Fatalf("Connect answer to an expired token: %v", err)
	}
}

// TestAuthenticate_UserTokenWithoutExpiryRefused: user tokens are always
// short-lived, so one without `exp` is not ours to accept.
func TestAuthenticate_UserTokenWithoutExpiryRefused(t *testing.T) {
	keys := newKeys(t)
	gens := &fakeGens{}
	gens.set(KindUser, 1, 0)
	tok, _ := NewSigner(keys).Issue(Principal{Kind: KindUser, ID: 1, Admin: true}, 0, 0)
	if _, err := NewVerifier(keys, gens, VerifierConfig{}).Authenticate(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("user token without exp: %v", err)
	}
}
