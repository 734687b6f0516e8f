package authn

import (
	"context"
	"errors"
	"net/http"
)

// Device-authentication refusals besides the token and certificate ones.
var (
	// ErrNotDevice: valid credentials of a user or consumer on a device edge.
	ErrNotDevice = errors.New("not a device token")
	// ErrUnavailable: the credentials could not be checked in time (the
	// registry did not answer); the edge answers 503, not a refusal.
	ErrUnavailable = errors.New("authentication unavailable")
)

// AuthenticateDevice is the one device authentication of every edge (HTTP,
// WebSocket and MQTT call it with the credentials their protocol carries;
// IngestService gets the same decision from the interceptor and Require):
// the token, when present, else the client certificate, must name a
// device. A refusal is ErrNoCredentials, ErrTokenExpired, ErrInvalidToken,
// ErrInvalidCertificate or ErrNotDevice; when ctx ended first the error
// wraps ErrUnavailable (and keeps the cause's text). DeviceStatus maps them
// to HTTP statuses.
func AuthenticateDevice(ctx context.Context, a Authenticator, c Credentials) (Principal, error) {
	p, err := AuthenticateCredentials(ctx, a, c)
	switch {
	case err == nil && p.Kind != KindDevice:
		return p, ErrNotDevice
	case err == nil:
		return p, nil
	case ctx.Err() != nil:
		return p, unavailableError{err}
	case errors.Is(err, ErrNoCredentials):
		return p, ErrNoCredentials
	case c.Token == "":
		return p, ErrInvalidCertificate
	case errors.Is(err, ErrTokenExpired):
		return p, ErrTokenExpired
	}
	return p, ErrInvalidToken
}

// DeviceFromRequest authenticates the device of an HTTP request: the
// Authorization bearer token, or without that header the TLS client
// certificate.
func DeviceFromRequest(r *http.Request, a Authenticator) (Principal, error) {
	var c Credentials
	if r.Header.Get("Authorization") == "" {
		c.Certificates = PeerCertificates(r.TLS)
	}
	if len(c.Certificates) == 0 {
		tok, err := TokenFromHeader(r.Header)
		if err != nil {
			return Principal{}, err
		}
		c.Token = tok
	}
	return AuthenticateDevice(r.Context(), a, c)
}

// DeviceStatus is the HTTP status of a device-authentication error (the
// original gateways' contract): 401 for missing, malformed or expired
// credentials and refused certificates, 403 for an invalid or revoked
// token or one that does not name a device, 503 when the credentials could
// not be checked.
func DeviceStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrTokenExpired):
		return http.StatusUnauthorized
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable
	case errors.Is(err, ErrInvalidToken), errors.Is(err, ErrNotDevice):
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// unavailableError keeps the cause's text and matches ErrUnavailable.
type unavailableError struct{ err error }

func (e unavailableError) Error() string   { return e.err.Error() }
func (e unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.err} }
