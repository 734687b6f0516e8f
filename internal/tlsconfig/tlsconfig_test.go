package tlsconfig_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"

	"github.com/iotplatform/iotplatform/internal/tlsconfig"
	"github.com/iotplatform/iotplatform/internal/tlsconfig/tlstest"
)

// echo serves lines back over TLS until the client closes.
func echo(t *testing.T, cfg *tls.Config) string {
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(t *testing.T, c *tls.Conn, r *bufio.Reader, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg + "\n")); err != nil {
		t.Fatalf("write on the open connection: %v", err)
	}
	got, err := r.ReadString('\n')
	if err != nil || got != msg+"\n" {
		t.Fatalf("echo on the open connection = %q, %v", got, err)
	}
}

func TestReload_NewHandshakesGetTheNewCertificateOpenConnectionsStay(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "srv")
	first := ca.Server(t, dir, "server")
	cert, err := tlsconfig.LoadCertificate(first.CertFile, first.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	rl := tlsconfig.NewReloader(slog.New(slog.DiscardHandler), 0)
	rl.WatchCertificate(cert)
	addr := echo(t, tlsconfig.Server(cert, tlsconfig.ProtosHTTP, false))
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	dial := func() *tls.Conn {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	old := dial()
	oldR := bufio.NewReader(old)
	if got := old.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatalf("first handshake presented serial %v, want %v", got, first.Cert.SerialNumber)
	}
	roundTrip(t, old, oldR, "before")

	second := ca.Server(t, dir, "server") // same file names, new key and certificate
	if err := rl.ReloadNow(); err != nil {
		t.Fatal(err)
	}
	if got := dial().ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(second.Cert.SerialNumber) != 0 {
		t.Fatalf("after reload the handshake presented serial %v, want the new %v", got, second.Cert.SerialNumber)
	}
	roundTrip(t, old, oldR, "after") // the connection made before the reload is still served
}

func TestReload_BrokenFilesKeepThePreviousCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "srv")
	leaf := ca.Server(t, dir, "server")
	cert, err := tlsconfig.LoadCertificate(leaf.CertFile, leaf.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	rl := tlsconfig.NewReloader(slog.New(slog.DiscardHandler), 0)
	rl.WatchCertificate(cert)
	// A key of another pair (a rotation caught half-way) does not load.
	other := ca.Server(t, dir, "other")
	b, _ := os.ReadFile(other.KeyFile)
	if err := os.WriteFile(leaf.KeyFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.ReloadNow(); err == nil {
		t.Fatal("a mismatched key pair was accepted")
	}
	if got := cert.Get().Leaf; got == nil || got.SerialNumber.Cmp(leaf.Cert.SerialNumber) != 0 {
		t.Fatalf("certificate after a failed reload = %v, want the previous one", got)
	}
	// Completing the rotation is picked up by the next poll.
	b, _ = os.ReadFile(other.CertFile)
	if err := os.WriteFile(leaf.CertFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := rl.ReloadNow(); err != nil {
		t.Fatal(err)
	}
	if got := cert.Get().Leaf; got.SerialNumber.Cmp(other.Cert.SerialNumber) != 0 {
		t.Fatalf("certificate after the rotation completed = %v, want %v", got.SerialNumber, other.Cert.SerialNumber)
	}
}

func TestLoad_Errors(t *testing.T) {
	dir := t.TempDir()
	if _, err := tlsconfig.LoadCertificate(dir+"/missing.pem", dir+"/missing-key.pem"); err == nil {
		t.Error("missing files loaded")
	}
	if err := os.WriteFile(dir+"/junk.pem", []byte("not pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := tlsconfig.LoadPool(dir + "/junk.pem"); err == nil {
		t.Error("a CA file without certificates loaded")
	}
	ca := tlstest.NewCA(t, dir, "c")
	p, err := tlsconfig.LoadPool(ca.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf := ca.Client(t, dir, "dev", "d", "iotplatform:device:1")
	if _, err := leaf.Cert.Verify(x509.VerifyOptions{Roots: p.Get(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("client certificate does not verify against the loaded pool: %v", err)
	}
}

func TestServer_RequestsButDoesNotRequireClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "srv")
	leaf := ca.Server(t, dir, "server")
	cert, _ := tlsconfig.LoadCertificate(leaf.CertFile, leaf.KeyFile)
	cfg := tlsconfig.Server(cert, tlsconfig.ProtosHTTP, true)
	if cfg.ClientAuth != tls.RequestClientCert || cfg.MinVersion < tls.VersionTLS12 {
		t.Fatalf("ClientAuth %v MinVersion %x", cfg.ClientAuth, cfg.MinVersion)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	addr := echo(t, cfg)
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake without a client certificate: %v", err)
	}
	c.Close()
	if _, err := net.Dial("tcp", addr); err != nil {
		t.Fatal(err)
	}
}
