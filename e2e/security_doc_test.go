package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func pemSerial(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", file)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.SerialNumber.String()
}

// TestSecurityDoc_TLSAndDeviceCertificateCommandsRunAsWritten runs the
// openssl, serve, curl, mosquitto_pub and grpcurl commands of the "TLS" and
// "Device certificates" sections of docs/SECURITY.md against the built
// binary. Only ports are rewritten to the test's.
func TestSecurityDoc_TLSAndDeviceCertificateCommandsRunAsWritten(t *testing.T) {
	for _, tool := range []string{"openssl", "curl", "mosquitto_pub"} {
		needTool(t, tool)
	}
	grpcurl := grpcurlPath(t)
	tlsBlocks := bashBlocks(t, "docs/SECURITY.md", "## TLS")
	certBlocks := bashBlocks(t, "docs/SECURITY.md", "## Device certificates")
	if len(tlsBlocks) != 4 || len(certBlocks) != 2 {
		t.Fatalf("want 4 bash blocks under TLS (certificates, serve, clients, rotation) and 2 under Device certificates (issue and push, revoke); got %d and %d", len(tlsBlocks), len(certBlocks))
	}
	dir := t.TempDir()
	bash := func(script string, env ...string) string {
		t.Helper()
		cmd := exec.Command("bash", "-c", "set -euo pipefail\n"+script)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "PATH="+filepath.Dir(grpcurl)+":"+os.Getenv("PATH")), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("doc commands failed: %v\n%s\n--- script ---\n%s", err, out, script)
		}
		return string(out)
	}
	bash(tlsBlocks[0])

	// The serve command as written, minus the listen addresses (the test's
	// free ports are used instead); file names resolve in dir.
	serve := strings.Fields(strings.ReplaceAll(tlsBlocks[1], "\\\n", " "))
	if len(serve) < 2 || serve[0] != "iotplatform" || serve[1] != "serve" {
		t.Fatalf("serve block is not an `iotplatform serve` command: %q", tlsBlocks[1])
	}
	var args []string
	for i := 2; i < len(serve); i++ {
		if strings.HasSuffix(serve[i], "-addr") {
			i++
			continue
		}
		a := serve[i]
		if strings.HasSuffix(a, ".pem") {
			a = filepath.Join(dir, a)
		}
		args = append(args, a)
	}
	roots := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "server-ca.pem"))
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("server-ca.pem not written by the doc's openssl commands")
	}
	p := Start(t, Options{Args: append(args, "--tls-reload-interval", "200ms"), TLSRoots: roots})
	jwt := p.AdminToken()
	d := p.NewDevice(jwt, "doc-device", "double")
	port := func(addr string) string { _, pt, _ := net.SplitHostPort(addr); return pt }
	ports := strings.NewReplacer("localhost:8080", "localhost:"+port(p.API), "localhost:8083", "localhost:"+port(p.HTTP),
		"-p 8883", "-p "+port(p.MQTT))
	env := []string{"JWT=" + jwt, "DEVICE_ID=" + d.ID, "SENSOR_ID=" + d.SensorID, "DEVICE_KEY=" + d.Token}

	out := bash(ports.Replace(tlsBlocks[2]), env...)
	for _, want := range []string{"ok\n", `{"accepted":1}`, `"username": "root"`} {
		if !strings.Contains(out, want) {
			t.Errorf("TLS client commands: output lacks %q:\n%s", want, out)
		}
	}
	out = bash(ports.Replace(certBlocks[0]), env...)
	for _, want := range []string{`"fingerprint":"`, `{"accepted":1}`, `"accepted": 1`} {
		if !strings.Contains(out, want) {
			t.Errorf("device certificate commands: output lacks %q:\n%s", want, out)
		}
	}
	if got := values(waitReadings(t, p, jwt, d.SensorID, 5)); fmt.Sprint(got) != "[1 2 3 4 5]" {
		t.Errorf("readings pushed by the doc's commands: %v, want [1 2 3 4 5]", got)
	}
	// Revocation: the revoke block ends with the refused request's status.
	fpCmd := "FP=$(openssl x509 -in device.pem -noout -fingerprint -sha256 | cut -d= -f2 | tr -d :)\n"
	if out = bash(fpCmd+ports.Replace(certBlocks[1]), env...); !strings.HasSuffix(out, "401\n") {
		t.Errorf("after removing the fingerprint the certificate was not refused with 401:\n%s", out)
	}

	// Rotation as written: the next handshake presents the new certificate.
	tp := &tlsPlatform{Platform: p, roots: roots}
	old := tp.servedSerial(t, p.API)
	bash(tlsBlocks[3])
	want := pemSerial(t, filepath.Join(dir, "server.pem"))
	if want == old {
		t.Fatal("the rotation block did not write a new certificate")
	}
	deadline := time.Now().Add(10 * time.Second)
	for tp.servedSerial(t, p.API) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the API still presents the old certificate after the doc's rotation\n%s", tail(p.Logs(), 20))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
