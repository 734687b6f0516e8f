package registrysql

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// tlsTestDB is a database of its own for the TLS test (migrations run in
// it), dropped afterwards.
func tlsTestDB(t *testing.T) string {
	t.Helper()
	admin, err := sql.Open("pgx", testenv.PostgresDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("reg_tls_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	return name
}

// withSSL returns the test DSN for database db with sslmode (and
// sslrootcert) replaced.
func withSSL(t *testing.T, db, mode, rootCert string) string {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	base, _, _ := strings.Cut(dsn, "?")
	base = base[:strings.LastIndex(base, "/")+1] + db
	q := "sslmode=" + mode
	if rootCert != "" {
		q += "&sslrootcert=" + rootCert
	}
	return base + "?" + q
}

// TestPostgres_DSNSSLModeIsHonoured connects the registry to the test
// server over TLS as the DSN says: verify-full with the server's CA is
// encrypted; verify-full with another CA is refused; disable is plain.
func TestPostgres_DSNSSLModeIsHonoured(t *testing.T) {
	ca := testenv.PostgresCAFile(t)
	db := tlsTestDB(t)
	ctx := context.Background()
	sslOf := func(r *DB) bool {
		t.Helper()
		var on bool
		if err := r.db.QueryRowContext(ctx, `SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()`).Scan(&on); err != nil {
			t.Fatal(err)
		}
		return on
	}

	r, err := OpenPostgres(ctx, withSSL(t, db, "verify-full", ca))
	if err != nil {
		t.Fatalf("sslmode=verify-full with the server's CA: %v", err)
	}
	if !sslOf(r) {
		t.Fatal("sslmode=verify-full connected without TLS")
	}
	r.Close()

	r, err = OpenPostgres(ctx, withSSL(t, db, "disable", ""))
	if err != nil {
		t.Fatal(err)
	}
	if sslOf(r) {
		t.Fatal("sslmode=disable connected with TLS")
	}
	r.Close()

	other := filepath.Join(t.TempDir(), "other-ca.pem")
	writeSelfSigned(t, other)
	if _, err := OpenPostgres(ctx, withSSL(t, db, "verify-full", other)); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("sslmode=verify-full with a foreign CA: err %v, want a certificate error", err)
	}
	if _, err := OpenPostgres(ctx, withSSL(t, db, "verify-full", filepath.Join(t.TempDir(), "missing.pem"))); err == nil {
		t.Fatal("sslmode=verify-full with a missing sslrootcert connected")
	}
}

func writeSelfSigned(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "not the test server"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}
