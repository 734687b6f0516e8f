package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/tlsconfig/tlstest"
)

type fakeCerts struct {
	mu   sync.Mutex
	m    map[string]int64 // fingerprint -> device
	also map[string][]int64
	n    int // lookups
}

func (f *fakeCerts) CertificateRegistered(_ context.Context, device int64, fp string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if id, ok := f.m[fp]; ok && id == device {
		return nil
	}
	for _, id := range f.also[fp] {
		if id == device {
			return nil
		}
	}
	return errors.New("not found")
}

// A fingerprint registered on a device the certificate does not name
// (another owner squatting a public fingerprint) neither authenticates as
// that device nor stops the certificate authenticating as the device it
// names.
func TestAuthenticateCertificate_SquattedFingerprintIgnored(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "devices")
	leaf := ca.Client(t, dir, "d7", "x", DeviceURIPrefix+"7")
	reg := &fakeCerts{m: map[string]int64{leaf.Fingerprint(): 8}} // squatter's device 8 only
	v, now := certVerifier(t, ca, reg)
	ctx := context.Background()
	chain := []*x509.Certificate{leaf.Cert}
	if p, err := v.AuthenticateCertificate(ctx, chain); !errors.Is(err, ErrInvalidCertificate) {
		t.Fatalf("fingerprint registered only on a device the certificate does not name: %+v %v", p, err)
	}
	reg.mu.Lock()
	reg.also = map[string][]int64{leaf.Fingerprint(): {7}} // the owner registers it too
	reg.mu.Unlock()
	*now = now.Add(1100 * time.Millisecond)
	if p, err := v.AuthenticateCertificate(ctx, chain); err != nil || p != (Principal{Kind: KindDevice, ID: 7}) {
		t.Fatalf("owner's registration beside a squatter's: %+v %v", p, err)
	}
}

func certVerifier(t *testing.T, ca *tlstest.CA, reg CertificateRegistry) (*Verifier, *time.Time) {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	v := NewVerifier(newKeys(t), &fakeGens{}, VerifierConfig{CacheTTL: time.Second})
	now := time.Now()
	v.now = func() time.Time { return now }
	v.EnableCertificates(func() *x509.CertPool { return pool }, reg)
	return v, &now
}

func TestAuthenticateCertificate_MapsRegisteredCertificatesToDevices(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "devices")
	other := tlstest.NewCA(t, dir, "other")
	good := ca.Client(t, dir, "d7", "sensor-box", DeviceURIPrefix+"7")
	unregistered := ca.Client(t, dir, "d7b", "x", DeviceURIPrefix+"7")
	foreign := other.Client(t, dir, "f7", "x", DeviceURIPrefix+"7")
	claimsOther := ca.Client(t, dir, "d8", "x", DeviceURIPrefix+"8")
	noSAN := ca.Client(t, dir, "nosan", "7")
	twoSANs := ca.Client(t, dir, "two", "x", DeviceURIPrefix+"7", DeviceURIPrefix+"9")
	serverCert := ca.Server(t, dir, "srv") // server auth only, no client auth usage
	reg := &fakeCerts{m: map[string]int64{
		good.Fingerprint(): 7, foreign.Fingerprint(): 7, claimsOther.Fingerprint(): 7,
		noSAN.Fingerprint(): 7, twoSANs.Fingerprint(): 7, serverCert.Fingerprint(): 7,
	}}
	v, _ := certVerifier(t, ca, reg)
	ctx := context.Background()
	p, err := v.AuthenticateCertificate(ctx, []*x509.Certificate{good.Cert})
	if err != nil || p != (Principal{Kind: KindDevice, ID: 7}) {
		t.Fatalf("registered certificate: %+v %v", p, err)
	}
	for name, l := range map[string]tlstest.Leaf{
		"unregistered": unregistered, "other CA": foreign, "SAN names another device": claimsOther,
		"no device SAN": noSAN, "two device SANs": twoSANs, "not for client auth": serverCert,
	} {
		if _, err := v.AuthenticateCertificate(ctx, []*x509.Certificate{l.Cert}); !errors.Is(err, ErrInvalidCertificate) {
			t.Errorf("%s: err %v, want ErrInvalidCertificate", name, err)
		}
	}
	if _, err := v.AuthenticateCertificate(ctx, nil); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("no chain: %v", err)
	}
	// Without EnableCertificates nothing is accepted.
	plain := NewVerifier(newKeys(t), &fakeGens{}, VerifierConfig{})
	if _, err := plain.AuthenticateCertificate(ctx, []*x509.Certificate{good.Cert}); !errors.Is(err, ErrInvalidCertificate) {
		t.Errorf("certificates accepted without a client CA: %v", err)
	}
}

func TestAuthenticateCertificate_RemovedFingerprintRefusedAfterCacheTTL(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "devices")
	leaf := ca.Client(t, dir, "d3", "x", DeviceURIPrefix+"3")
	reg := &fakeCerts{m: map[string]int64{leaf.Fingerprint(): 3}}
	v, now := certVerifier(t, ca, reg)
	ctx := context.Background()
	chain := []*x509.Certificate{leaf.Cert}
	if _, err := v.AuthenticateCertificate(ctx, chain); err != nil {
		t.Fatal(err)
	}
	if _, err := v.AuthenticateCertificate(ctx, chain); err != nil || reg.n != 1 {
		t.Fatalf("second call within the TTL: %v, %d lookups (want 1, cached)", err, reg.n)
	}
	reg.mu.Lock()
	delete(reg.m, leaf.Fingerprint())
	reg.mu.Unlock()
	*now = now.Add(1100 * time.Millisecond)
	if _, err := v.AuthenticateCertificate(ctx, chain); !errors.Is(err, ErrInvalidCertificate) {
		t.Fatalf("removed fingerprint after the TTL: %v", err)
	}
	// Expired certificates are refused even when registered.
	reg.mu.Lock()
	reg.m[leaf.Fingerprint()] = 3
	reg.mu.Unlock()
	*now = leaf.Cert.NotAfter.Add(time.Minute)
	if _, err := v.AuthenticateCertificate(ctx, chain); !errors.Is(err, ErrInvalidCertificate) {
		t.Fatalf("expired certificate: %v", err)
	}
}

func TestNormalizeFingerprint(t *testing.T) {
	hex := strings.Repeat("ab", 32)
	colons := strings.ToUpper(strings.TrimSuffix(strings.Repeat("AB:", 32), ":"))
	for in, want := range map[string]string{
		hex: hex, strings.ToUpper(hex): hex, colons: hex, "sha256 Fingerprint=" + colons: hex, " " + hex + "\n": hex,
		"": "", "abc": "", strings.Repeat("zz", 32): "", strings.Repeat("ab", 20): "",
	} {
		got, err := NormalizeFingerprint(in)
		if got != want || (want == "") != (err != nil) {
			t.Errorf("NormalizeFingerprint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestMiddleware_CertificateWhenNoToken(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "devices")
	leaf := ca.Client(t, dir, "d5", "x", DeviceURIPrefix+"5")
	bad := ca.Client(t, dir, "d5b", "x", DeviceURIPrefix+"5")
	v, _ := certVerifier(t, ca, &fakeCerts{m: map[string]int64{leaf.Fingerprint(): 5}})
	var got Principal
	h := Middleware(v, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = FromContext(r.Context())
		if p, err := Reauthenticate(r.Context()); err != nil || p != got {
			t.Errorf("Reauthenticate of a certificate caller: %+v %v", p, err)
		}
	}))
	req := httptest.NewRequest("GET", "https://example/api/x", nil)
	req.TLS.PeerCertificates = []*x509.Certificate{leaf.Cert}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 200 || got != (Principal{Kind: KindDevice, ID: 5}) {
		t.Fatalf("registered certificate: %d %+v", rec.Code, got)
	}
	req.TLS.PeerCertificates = []*x509.Certificate{bad.Cert}
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 401 || !strings.Contains(rec.Body.String(), ErrInvalidCertificate.Error()) {
		t.Fatalf("unregistered certificate: %d %s", rec.Code, rec.Body)
	}
}

func TestAuthenticate_TokenCannotNameACachedCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "devices")
	leaf := ca.Client(t, dir, "d4", "x", DeviceURIPrefix+"4")
	v, _ := certVerifier(t, ca, &fakeCerts{m: map[string]int64{leaf.Fingerprint(): 4}})
	ctx := context.Background()
	if _, err := v.AuthenticateCertificate(ctx, []*x509.Certificate{leaf.Cert}); err != nil {
		t.Fatal(err)
	}
	// Fingerprints are public; a bearer string built from one must not
	// match the certificate's cache entry.
	for _, tok := range []string{leaf.Fingerprint(), "cert:" + leaf.Fingerprint()} {
		if p, err := v.Authenticate(ctx, tok); err == nil {
			t.Fatalf("token %q authenticated as %+v", tok, p)
		}
	}
}
