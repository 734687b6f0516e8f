package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/iotplatform/iotplatform/internal/tlsconfig"
)

// httpTLS is the client TLS configuration httpLoad uses (nil: plain).
var httpTLS *tls.Config

// serveTLS serves h over TLS with the platform's server configuration
// (internal/tlsconfig, the certificate read from PEM files as the binary
// does) and points httpTLS at a pool trusting it. HTTP/1.1 on both sides, so
// the plain run is the like-for-like reference.
func serveTLS(h http.Handler) string {
	dir, err := os.MkdirTemp("", "ingestload-tls-")
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	must(err)
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	must(err)
	cf, kf := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	cert, err := tlsconfig.LoadCertificate(cf, kf)
	must(err)
	_ = os.RemoveAll(dir)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	go (&http.Server{Handler: h}).Serve(tls.NewListener(ln, tlsconfig.Server(cert, tlsconfig.ProtosHTTP1, false)))
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	httpTLS = &tls.Config{RootCAs: pool}
	return "https://" + ln.Addr().String() + "/"
}
