package authn

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// DeviceURIPrefix starts the URI SAN naming the device a client certificate
// belongs to: `iotplatform:device:<device id>`.
const DeviceURIPrefix = "iotplatform:device:"

// ErrInvalidCertificate refuses a client certificate: not issued by the
// deployment's client CA, expired, without exactly one device URI SAN, or
// whose fingerprint is not (or no longer) registered for that device. Edges
// answer it like a missing credential: 401, Unauthenticated, MQTT bad
// credentials.
var ErrInvalidCertificate = errors.New("client certificate invalid, unregistered or revoked")

// CertificateRegistry tells the verifier whether a certificate fingerprint
// is registered for the device the certificate names; any error refuses
// the certificate. The lookup is per device: fingerprints are public, so a
// registration on any other device must not matter.
type CertificateRegistry interface {
	CertificateRegistered(ctx context.Context, deviceID int64, fingerprint string) error
}

// Fingerprint is the lowercase hex SHA-256 of a certificate's DER bytes,
// the form registered in Core.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// NormalizeFingerprint accepts a SHA-256 fingerprint in any case, with or
// without colons or spaces (`openssl x509 -fingerprint -sha256` prints
// `AB:CD:...`), and returns its 64 lowercase hex digits.
func NormalizeFingerprint(s string) (string, error) {
	s = strings.TrimSpace(s)
	if _, v, ok := strings.Cut(s, "="); ok { // "sha256 Fingerprint=AB:CD:..."
		s = v
	}
	s = strings.ToLower(strings.NewReplacer(":", "", " ", "").Replace(s))
	if len(s) != 64 {
		return "", errors.New("want a SHA-256 fingerprint: 64 hex digits, colons allowed")
	}
	if _, err := hex.DecodeString(s); err != nil {
		return "", errors.New("want a SHA-256 fingerprint: 64 hex digits, colons allowed")
	}
	return s, nil
}

// DeviceIDOf returns the device id named by the certificate's single
// `iotplatform:device:<id>` URI SAN.
func DeviceIDOf(c *x509.Certificate) (int64, error) {
	var id int64
	for _, u := range c.URIs {
		rest, ok := strings.CutPrefix(u.String(), DeviceURIPrefix)
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(rest, 10, 64)
		if err != nil || n <= 0 || id != 0 {
			return 0, errors.New("want exactly one URI SAN " + DeviceURIPrefix + "<device id>")
		}
		id = n
	}
	if id == 0 {
		return 0, errors.New("no URI SAN " + DeviceURIPrefix + "<device id>")
	}
	return id, nil
}

// EnableCertificates lets the verifier authenticate devices by client
// certificate: roots returns the current client CA pool (it may change when
// the CA file is reloaded), reg tells which fingerprints are registered for which devices.
// Call it before serving.
func (v *Verifier) EnableCertificates(roots func() *x509.CertPool, reg CertificateRegistry) {
	v.roots, v.certs = roots, reg
}

// AuthenticateCertificate verifies a TLS client certificate chain (leaf
// first) and returns the device principal it stands for: the chain must
// verify against the client CA for client authentication, the leaf must
// name one device by URI SAN, and its fingerprint must be registered for
// that device. Like tokens, the result is trusted for CacheTTL, so removing
// the fingerprint revokes the certificate within that bound.
func (v *Verifier) AuthenticateCertificate(ctx context.Context, chain []*x509.Certificate) (Principal, error) {
	if len(chain) == 0 {
		return Principal{}, ErrNoCredentials
	}
	if v.roots == nil || v.certs == nil {
		return Principal{}, fmt.Errorf("%w: device certificates are not enabled", ErrInvalidCertificate)
	}
	leaf := chain[0]
	fp := Fingerprint(leaf)
	now := v.now()
	c, ok, _ := v.certCache.Get(fp) // never the token cache: a token must not be able to name a certificate
	if ok && now.Before(c.expires) {
		return c.p, nil
	}
	inter := x509.NewCertPool()
	for _, ic := range chain[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots(), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		v.certCache.Forget(fp)
		return Principal{}, fmt.Errorf("%w: not issued by the client CA or expired", ErrInvalidCertificate)
	}
	id, err := DeviceIDOf(leaf)
	if err != nil {
		v.certCache.Forget(fp)
		return Principal{}, fmt.Errorf("%w: %s", ErrInvalidCertificate, err.Error())
	}
	if err := v.certs.CertificateRegistered(ctx, id, fp); err != nil {
		v.certCache.Forget(fp)
		if ctx.Err() != nil {
			return Principal{}, ctx.Err()
		}
		return Principal{}, fmt.Errorf("%w: fingerprint not registered for device %d", ErrInvalidCertificate, id)
	}
	c = cached{p: Principal{Kind: KindDevice, ID: id}, expires: leaf.NotAfter}
	v.certCache.Put(fp, c)
	return c.p, nil
}

// Credentials are what a caller presented: a bearer token and the TLS
// client certificate chain (leaf first), either possibly empty.
type Credentials struct {
	Token        string
	Certificates []*x509.Certificate
}

// AuthenticateCredentials is the one decision every edge makes: a token,
// when present, wins (token devices and users keep working on a mutual-TLS
// port); otherwise the client certificate is verified; with neither the
// error is ErrNoCredentials.
func AuthenticateCredentials(ctx context.Context, a Authenticator, c Credentials) (Principal, error) {
	if c.Token != "" {
		return a.Authenticate(ctx, c.Token)
	}
	if len(c.Certificates) > 0 {
		ca, ok := a.(CertificateAuthenticator)
		if !ok {
			return Principal{}, fmt.Errorf("%w: device certificates are not enabled", ErrInvalidCertificate)
		}
		return ca.AuthenticateCertificate(ctx, c.Certificates)
	}
	return Principal{}, ErrNoCredentials
}

// PeerCertificates returns the client certificate chain of a TLS
// connection state (nil without TLS or certificate).
func PeerCertificates(cs *tls.ConnectionState) []*x509.Certificate {
	if cs == nil {
		return nil
	}
	return cs.PeerCertificates
}

type peerKey struct{}

// WithPeerCertificates wraps an HTTP handler so Connect handlers (whose
// interceptors see only the context) can authenticate by the client
// certificate of the request's TLS connection.
func WithPeerCertificates(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if certs := PeerCertificates(r.TLS); len(certs) > 0 {
			r = r.WithContext(context.WithValue(r.Context(), peerKey{}, certs))
		}
		next.ServeHTTP(w, r)
	})
}

func peerFromContext(ctx context.Context) []*x509.Certificate {
	c, _ := ctx.Value(peerKey{}).([]*x509.Certificate)
	return c
}
