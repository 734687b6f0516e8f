package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
)

// fakeAuth answers tokens from a table and certificates with certP/certErr.
type fakeAuth struct {
	tokens  map[string]Principal
	errs    map[string]error
	certP   Principal
	certErr error
}

func (f fakeAuth) Authenticate(_ context.Context, tok string) (Principal, error) {
	if err, ok := f.errs[tok]; ok {
		return Principal{}, err
	}
	if p, ok := f.tokens[tok]; ok {
		return p, nil
	}
	return Principal{}, ErrInvalidToken
}

func (f fakeAuth) AuthenticateCertificate(context.Context, []*x509.Certificate) (Principal, error) {
	return f.certP, f.certErr
}

// TestAuthenticateDevice_OneDecisionForEveryEdge: the token wins over the
// certificate, only devices pass, and each refusal has its status (401
// missing/expired/refused certificate, 403 invalid or not a device, 503
// when the check could not finish).
func TestAuthenticateDevice_OneDecisionForEveryEdge(t *testing.T) {
	a := fakeAuth{
		tokens: map[string]Principal{"dev": {Kind: KindDevice, ID: 7}, "user": {Kind: KindUser, ID: 1}},
		errs:   map[string]error{"old": fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)},
		certP:  Principal{Kind: KindDevice, ID: 9},
	}
	cert := []*x509.Certificate{{}}
	for _, tc := range []struct {
		name   string
		auth   Authenticator
		creds  Credentials
		id     int64
		status int
	}{
		{"device token", a, Credentials{Token: "dev"}, 7, 200},
		{"token wins over certificate", a, Credentials{Token: "dev", Certificates: cert}, 7, 200},
		{"device certificate", a, Credentials{Certificates: cert}, 9, 200},
		{"user token", a, Credentials{Token: "user"}, 0, 403},
		{"invalid token", a, Credentials{Token: "nope"}, 0, 403},
		{"expired token", a, Credentials{Token: "old"}, 0, 401},
		{"nothing", a, Credentials{}, 0, 401},
		{"refused certificate", fakeAuth{certErr: errors.New("unregistered")}, Credentials{Certificates: cert}, 0, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := AuthenticateDevice(context.Background(), tc.auth, tc.creds)
			if got := DeviceStatus(err); got != tc.status {
				t.Fatalf("status %d (%v), want %d", got, err, tc.status)
			}
			if tc.status == 200 && p.ID != tc.id {
				t.Fatalf("principal %+v, want id %d", p, tc.id)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := AuthenticateDevice(ctx, fakeAuth{errs: map[string]error{"slow": context.Canceled}}, Credentials{Token: "slow"})
	if DeviceStatus(err) != http.StatusServiceUnavailable || !errors.Is(err, context.Canceled) {
		t.Fatalf("ended context: %v (status %d), want 503 keeping the cause", err, DeviceStatus(err))
	}
}

// TestDeviceFromRequest_HeaderThenCertificate: a malformed header is a 401
// even with a certificate present (the header was meant); no header falls
// back to the certificate.
func TestDeviceFromRequest_HeaderThenCertificate(t *testing.T) {
	a := fakeAuth{tokens: map[string]Principal{"dev": {Kind: KindDevice, ID: 7}}, certP: Principal{Kind: KindDevice, ID: 9}}
	r := httptest.NewRequest("POST", "/", nil)
	r.Header.Set("Authorization", "Basic x")
	if _, err := DeviceFromRequest(r, a); !errors.Is(err, ErrMalformed) || DeviceStatus(err) != 401 {
		t.Fatalf("malformed header: %v", err)
	}
	r.Header.Set("Authorization", "Bearer dev")
	if p, err := DeviceFromRequest(r, a); err != nil || p.ID != 7 {
		t.Fatalf("bearer: %+v %v", p, err)
	}
	r.Header.Del("Authorization")
	if _, err := DeviceFromRequest(r, a); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}
}
