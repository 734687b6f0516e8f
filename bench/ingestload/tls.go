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
	"os"
	"path/filepath"
	"time"
)

// httpTLS is the client TLS configuration httpLoad uses (nil: plain).
var httpTLS *tls.Config

// tlsFiles writes a self-signed ECDSA P-256 certificate for 127.0.0.1 and
// its key as PEM files (removed at exit), for the platform's
// --http-tls-cert/--http-tls-key, and points httpTLS at a pool trusting it.
// HTTP/1.1 on the client, so the plain run is the like-for-like reference.
func tlsFiles() (cert, key string) {
	dir, err := os.MkdirTemp("", "ingestload-tls-")
	must(err)
	cleanups = append(cleanups, func() { _ = os.RemoveAll(dir) })
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	must(err)
	kder, err := x509.MarshalPKCS8PrivateKey(k)
	must(err)
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	must(os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	must(os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600))
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	httpTLS = &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}
	return cert, key
}
