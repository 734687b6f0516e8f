package authn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

type fakeGens struct {
	mu   sync.Mutex
	gens map[Kind]map[int64]int64
}

func (f *fakeGens) TokenGeneration(_ context.Context, k Kind, id int64) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.gens[k][id]
	if !ok {
		return 0, errors.New("not found")
	}
	return g, nil
}

func (f *fakeGens) set(k Kind, id, g int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gens == nil {
		f.gens = map[Kind]map[int64]int64{}
	}
	if f.gens[k] == nil {
		f.gens[k] = map[int64]int64{}
	}
	f.gens[k][id] = g
}

func newKeys(t *testing.T) *KeySet {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return NewKeySet(priv)
}

func TestAuthenticate_AcceptsAndRejects(t *testing.T) {
	keys := newKeys(t)
	other := newKeys(t)
	gens := &fakeGens{}
	gens.set(KindDevice, 7, 0)
	gens.set(KindUser, 1, 2)
	signer := NewSigner(keys)
	v := NewVerifier(keys, gens, VerifierConfig{})

	device, _ := signer.Issue(Principal{Kind: KindDevice, ID: 7}, 0, 0)
	admin, _ := signer.Issue(Principal{Kind: KindUser, ID: 1, Admin: true}, 2, time.Hour)
	foreign, _ := NewSigner(other).Issue(Principal{Kind: KindDevice, ID: 7}, 0, 0)
	oldGen, _ := signer.Issue(Principal{Kind: KindUser, ID: 1}, 1, time.Hour)
	unknownSubject, _ := signer.Issue(Principal{Kind: KindDevice, ID: 8}, 0, 0)

	expiredSigner := NewSigner(keys)
	expiredSigner.now = func() time.Time { return time.Now().Add(-2 * time.Hour) }
	expired, _ := expiredSigner.Issue(Principal{Kind: KindUser, ID: 1}, 2, time.Hour)

	// HS256 signed with the public key bytes: the classic algorithm confusion.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{Kind: KindDevice, RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: "7"}})
	hs.Header["kid"] = keys.signingKID
	confused, _ := hs.SignedString([]byte(keys.public[keys.signingKID]))
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims{Kind: KindDevice, RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: "7"}})
	unsigned, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	wrongIss := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims{Kind: KindDevice, RegisteredClaims: jwt.RegisteredClaims{Issuer: "evil", Subject: "7"}})
	wrongIss.Header["kid"] = keys.signingKID
	wrongIssuer, _ := wrongIss.SignedString(keys.signing)
	badKind := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims{Kind: "robot", RegisteredClaims: jwt.RegisteredClaims{Issuer: Issuer, Subject: "7"}})
	badKind.Header["kid"] = keys.signingKID
	unknownKind, _ := badKind.SignedString(keys.signing)

	tests := []struct {
		name  string
		token string
		want  Principal
		ok    bool
	}{
		{"device token", device, Principal{Kind: KindDevice, ID: 7}, true},
		{"admin token", admin, Principal{Kind: KindUser, ID: 1, Admin: true}, true},
		{"signed by another key", foreign, Principal{}, false},
		{"tampered signature", device[:len(device)-4] + "AAAA", Principal{}, false},
		{"older generation", oldGen, Principal{}, false},
		{"subject deleted", unknownSubject, Principal{}, false},
		{"expired", expired, Principal{}, false},
		{"HS256 algorithm confusion", confused, Principal{}, false},
		{"alg none", unsigned, Principal{}, false},
		{"wrong issuer", wrongIssuer, Principal{}, false},
		{"unknown kind", unknownKind, Principal{}, false},
		{"garbage", "not.a.jwt", Principal{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.Authenticate(context.Background(), tc.token)
			if tc.ok {
				if err != nil || p != tc.want {
					t.Fatalf("Authenticate = %+v, %v; want %+v", p, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("Authenticate err = %v, want ErrInvalidToken", err)
			}
		})
	}
}

func TestAuthenticate_RotationTakesEffectAfterCacheTTL(t *testing.T) {
	keys := newKeys(t)
	gens := &fakeGens{}
	gens.set(KindDevice, 7, 0)
	v := NewVerifier(keys, gens, VerifierConfig{CacheTTL: time.Minute})
	now := time.Now()
	v.now = func() time.Time { return now }
	tok, _ := NewSigner(keys).Issue(Principal{Kind: KindDevice, ID: 7}, 0, 0)
	if _, err := v.Authenticate(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	gens.set(KindDevice, 7, 1) // rotated
	if _, err := v.Authenticate(context.Background(), tok); err != nil {
		t.Fatalf("within the staleness bound the cached result stands: %v", err)
	}
	now = now.Add(time.Minute)
	if _, err := v.Authenticate(context.Background(), tok); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("after the bound the rotated token must fail, got %v", err)
	}
}

func TestParseBearer(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"Bearer abc", "abc", nil},
		{"bearer abc", "abc", nil},
		{"BEARER  abc ", "abc", nil},
		{"abc", "", ErrMalformed},
		{"Basic abc", "", ErrMalformed},
		{"Bearer ", "", ErrMalformed},
		{"Bearer a b", "", ErrMalformed},
	}
	for _, tc := range tests {
		got, err := ParseBearer(tc.in)
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("ParseBearer(%q) = %q, %v; want %q, %v", tc.in, got, err, tc.want, tc.err)
		}
	}
	// Node.js clients send the header in lower case.
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("authorization", "Bearer lower")
	if tok, err := TokenFromHeader(r.Header); tok != "lower" || err != nil {
		t.Fatalf("lowercase header: %q %v", tok, err)
	}
	if _, err := TokenFromHeader(http.Header{}); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("missing header: %v", err)
	}
}

func TestJWKSSource_VerifiesWithPublishedKeys(t *testing.T) {
	keys := newKeys(t)
	fetches := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fetches++
		w.Write(keys.JWKS())
	}))
	defer srv.Close()
	gens := &fakeGens{}
	gens.set(KindDevice, 7, 0)
	src := NewJWKSSource(srv.URL, srv.Client())
	v := NewVerifier(src, gens, VerifierConfig{})
	tok, _ := NewSigner(keys).Issue(Principal{Kind: KindDevice, ID: 7}, 0, 0)
	if p, err := v.Authenticate(context.Background(), tok); err != nil || p.ID != 7 {
		t.Fatalf("Authenticate via JWKS = %+v, %v", p, err)
	}
	other, _ := NewSigner(newKeys(t)).Issue(Principal{Kind: KindDevice, ID: 7}, 0, 0)
	if _, err := v.Authenticate(context.Background(), other); err == nil {
		t.Fatal("token of an unpublished key accepted")
	}
	if fetches > 2 {
		t.Fatalf("JWKS fetched %d times; unknown kids must be rate limited", fetches)
	}
	if !strings.Contains(string(keys.JWKS()), `"alg":"EdDSA"`) {
		t.Fatal("JWKS lacks alg")
	}
}

func TestLoadOrCreateKeys_PersistsAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.signingKID != k2.signingKID {
		t.Fatal("a restart must keep the signing key")
	}
}

// TestJWKSSource_DropsKeysRemovedFromCore: after maxAge the set is re-read,
// so a key withdrawn by Core stops verifying; a failed refresh keeps the old set.
func TestJWKSSource_DropsKeysRemovedFromCore(t *testing.T) {
	keys := newKeys(t)
	published, down := true, false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		switch {
		case down:
			http.Error(w, "down", http.StatusServiceUnavailable)
		case published:
			w.Write(keys.JWKS())
		default:
			w.Write([]byte(`{"keys":[]}`))
		}
	}))
	defer srv.Close()
	src := NewJWKSSource(srv.URL, srv.Client())
	now := time.Now()
	src.now = func() time.Time { return now }
	if _, err := src.PublicKey(context.Background(), keys.signingKID); err != nil {
		t.Fatal(err)
	}
	down = true
	now = now.Add(2 * time.Minute)
	if _, err := src.PublicKey(context.Background(), keys.signingKID); err != nil {
		t.Fatalf("Core unreachable: the cached key must still verify, got %v", err)
	}
	down, published = false, false
	now = now.Add(2 * time.Minute)
	if _, err := src.PublicKey(context.Background(), keys.signingKID); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a key removed from Core still verifies after maxAge: %v", err)
	}
}

// TestLoadOrCreateKeys_NewestFileSigns: adding a key file rolls the signing
// key; the older key still verifies.
func TestLoadOrCreateKeys_NewestFileSigns(t *testing.T) {
	dir := t.TempDir()
	old, err := LoadOrCreateKeys(dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ { // a few tries, so the name order differs from the age order at least once
		f, err := writeNewKey(dir)
		if err != nil {
			t.Fatal(err)
		}
		future := time.Now().Add(time.Duration(i+1) * time.Hour)
		if err := os.Chtimes(f, future, future); err != nil {
			t.Fatal(err)
		}
		ks, err := LoadOrCreateKeys(dir)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := readKey(f)
		if ks.signingKID != KeyID(want.Public().(ed25519.PublicKey)) {
			t.Fatalf("try %d: the newest key file does not sign", i)
		}
		if _, err := ks.PublicKey(context.Background(), old.signingKID); err != nil {
			t.Fatal("the first key no longer verifies")
		}
	}
}
