package e2e

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestBackends_KafkaSASLThroughTheBinary runs the binary against the SASL
// listener of the real broker (SCRAM-SHA-512, password from a file): a
// reading acknowledged over HTTP travels producer → Kafka → pipeline
// consumer → store and is read back, and the password never shows in the
// logs. A wrong password keeps ingest unavailable with a clear log line.
func TestBackends_KafkaSASLThroughTheBinary(t *testing.T) {
	l := testenv.KafkaSASLListener(t)
	pw, err := os.ReadFile(l.PasswordFile)
	if err != nil {
		t.Fatal(err)
	}
	p := Start(t, Options{
		Args: []string{"--kafka-brokers", l.Brokers, "--kafka-topic", "e2e.sasl." + randHex(4), "--kafka-group", "e2e-sasl-" + randHex(4)},
		Env: []string{"IOT_KAFKA_SASL_MECHANISM=SCRAM-SHA-512", "IOT_KAFKA_SASL_USERNAME=" + l.Username,
			"IOT_KAFKA_SASL_PASSWORD_FILE=" + l.PasswordFile},
	})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "sasl-dev", "double")
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":`+d.SensorID+`,"value":42.5}`)); s != 200 {
		t.Fatalf("HTTP ingest over SASL Kafka: %d\n%s", s, tail(p.Logs(), 20))
	}
	eventually(t, func() bool {
		r := p.Do("GET", "/api/sensors/latest?sensor_id="+d.SensorID, admin, nil)
		return r.Status == 200 && strings.Contains(string(r.Body), "42.5")
	})
	if strings.Contains(p.Logs(), strings.TrimSpace(string(pw))) {
		t.Fatal("the Kafka SASL password appears in the logs")
	}

	// Refused credentials: the process says why (and not the password).
	wrong := "wrong-" + randHex(6)
	out, _ := runBinary(t, 12*time.Second, []string{"IOT_KAFKA_SASL_MECHANISM=PLAIN", "IOT_KAFKA_SASL_USERNAME=" + l.Username, "IOT_KAFKA_SASL_PASSWORD=" + wrong},
		"serve", "--log-format", "text", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--kafka-brokers", l.Brokers, "--kafka-topic", "e2e.sasl."+randHex(4))
	if !strings.Contains(out, `level=ERROR msg="kafka authentication failed"`) || !strings.Contains(out, "Invalid username or password") {
		t.Fatalf("no clear authentication error in the logs:\n%s", tail(out, 20))
	}
	if strings.Contains(out, wrong) {
		t.Fatal("the wrong Kafka password appears in the logs")
	}
}

// TestBackends_CredentialFlagsRefuseBadValues checks that bad credential
// settings stop the binary before it starts, naming the variable.
func TestBackends_CredentialFlagsRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		env  []string
		want string
	}{
		{[]string{"IOT_KAFKA_SASL_MECHANISM=GSSAPI", "IOT_KAFKA_SASL_USERNAME=u", "IOT_KAFKA_SASL_PASSWORD=p"}, "GSSAPI"},
		{[]string{"IOT_KAFKA_SASL_MECHANISM=PLAIN", "IOT_KAFKA_SASL_USERNAME=u"}, "IOT_KAFKA_SASL_PASSWORD"},
		{[]string{"IOT_KAFKA_SASL_MECHANISM=PLAIN", "IOT_KAFKA_SASL_USERNAME=u", "IOT_KAFKA_SASL_PASSWORD_FILE=/nonexistent/pw"}, "IOT_KAFKA_SASL_PASSWORD_FILE"},
		{[]string{"IOT_KAFKA_TLS=maybe"}, "IOT_KAFKA_TLS"},
		{[]string{"IOT_OPENSEARCH_CA_FILE=/nonexistent/ca.pem"}, "IOT_OPENSEARCH_CA_FILE"},
		{[]string{"IOT_OPENSEARCH_PASSWORD=p"}, "IOT_OPENSEARCH_USERNAME"},
	} {
		out, err := runBinary(t, 20*time.Second, c.env, "serve", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0")
		if err == nil || !strings.Contains(out, c.want) {
			t.Errorf("%v: err %v, output %q; want a refusal naming %s", c.env, err, out, c.want)
		}
	}
}

// runBinary runs the binary with extra environment and every listener on a
// loopback port chosen by the kernel, for at most d.
func runBinary(t *testing.T, d time.Duration, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	args = append(args, "--http-addr", "127.0.0.1:0", "--ws-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0")
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
