//go:build cgo

package buskafka_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestSASL_ProducesAndConsumes publishes and consumes through the real
// broker's SASL_PLAINTEXT listener with each mechanism.
func TestSASL_ProducesAndConsumes(t *testing.T) {
	l := testenv.KafkaSASLListener(t)
	for _, mech := range []string{buskafka.MechanismPlain, buskafka.MechanismScramSHA256, buskafka.MechanismScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			sec := buskafka.Security{Mechanism: mech, Username: l.Username, PasswordFile: l.PasswordFile}
			roundTrip(t, l.Brokers, sec)
		})
	}
	t.Run("password from the environment", func(t *testing.T) {
		b, err := os.ReadFile(l.PasswordFile)
		if err != nil {
			t.Fatal(err)
		}
		sec := buskafka.Security{Mechanism: buskafka.MechanismScramSHA256, Username: l.Username, Password: strings.TrimSpace(string(b))}
		roundTrip(t, l.Brokers, sec)
	})
}

func roundTrip(t *testing.T, brokers string, sec buskafka.Security) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	n := strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatInt(seq.Add(1), 10)
	cfg := buskafka.Config{Brokers: brokers, Topic: "test.sasl." + n, Group: "test-sasl-" + n, Partitions: 1, ReplicationFactor: 1, Security: sec}
	p, err := buskafka.NewProducer(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := p.EnsureTopics(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, []*busv1.Record{bustest.Rec(7, 8, 1), bustest.Rec(7, 8, 2)}); err != nil {
		t.Fatal(err)
	}
	s, err := buskafka.NewSubscriber(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 10)
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(sctx, func(_ context.Context, recs []*busv1.Record) error {
			for _, r := range recs {
				got <- r.GetTimestampNs()
			}
			return nil
		})
	}()
	for want := int64(1); want <= 2; want++ {
		select {
		case ts := <-got:
			if ts != want {
				t.Fatalf("consumed record %d, want %d", ts, want)
			}
		case <-ctx.Done():
			t.Fatal("records not consumed through the SASL listener")
		}
	}
	scancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestSASL_WrongPasswordFailsClearly checks that refused credentials are
// reported as an authentication failure, not only as a timeout.
func TestSASL_WrongPasswordFailsClearly(t *testing.T) {
	l := testenv.KafkaSASLListener(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	for _, mech := range []string{buskafka.MechanismPlain, buskafka.MechanismScramSHA512} {
		t.Run(mech, func(t *testing.T) {
			cfg := buskafka.Config{Brokers: l.Brokers, Topic: "test.sasl.wrong", PublishTimeout: 2 * time.Second,
				Security: buskafka.Security{Mechanism: mech, Username: l.Username, Password: "not-the-password"}}
			p, err := buskafka.NewProducer(log, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err = p.Ping(ctx)
			if !errors.Is(err, buskafka.ErrAuthentication) || !strings.Contains(err.Error(), "Authentication failed") {
				t.Fatalf("Ping with a wrong password = %v, want an authentication failure", err)
			}
			if strings.Contains(err.Error(), "not-the-password") {
				t.Fatalf("error leaks the password: %v", err)
			}
			err = p.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, 1)})
			if !errors.Is(err, bus.ErrUnavailable) || !errors.Is(err, buskafka.ErrAuthentication) {
				t.Fatalf("Publish with a wrong password = %v, want unavailable + authentication failure", err)
			}
		})
	}
}

// TestSASL_PlaintextClientRefused checks the SASL listener does not let a
// client in without credentials.
func TestSASL_PlaintextClientRefused(t *testing.T) {
	l := testenv.KafkaSASLListener(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	p, err := buskafka.NewProducer(log, buskafka.Config{Brokers: l.Brokers, PublishTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.Ping(ctx); err == nil {
		t.Fatal("a client without SASL was served by the SASL listener")
	}
}

func TestSecurity_Validate(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		sec   buskafka.Security
		proto string
		ok    bool
	}{
		{"none", buskafka.Security{}, "plaintext", true},
		{"tls only", buskafka.Security{CAFile: pwFile}, "ssl", true},
		{"scram", buskafka.Security{Mechanism: "SCRAM-SHA-256", Username: "u", Password: "p"}, "sasl_plaintext", true},
		{"scram over tls", buskafka.Security{Mechanism: "SCRAM-SHA-512", Username: "u", PasswordFile: pwFile, TLS: true}, "sasl_ssl", true},
		{"unknown mechanism", buskafka.Security{Mechanism: "GSSAPI", Username: "u", Password: "p"}, "", false},
		{"no username", buskafka.Security{Mechanism: "PLAIN", Password: "p"}, "", false},
		{"no password", buskafka.Security{Mechanism: "PLAIN", Username: "u"}, "", false},
		{"password and file", buskafka.Security{Mechanism: "PLAIN", Username: "u", Password: "p", PasswordFile: pwFile}, "", false},
		{"credentials without mechanism", buskafka.Security{Username: "u", Password: "p"}, "", false},
		{"cert without key", buskafka.Security{CertFile: pwFile}, "", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.sec.Validate()
			if (err == nil) != c.ok {
				t.Fatalf("Validate = %v, want ok=%v", err, c.ok)
			}
			if c.ok && c.sec.Protocol() != c.proto {
				t.Fatalf("Protocol = %s, want %s", c.sec.Protocol(), c.proto)
			}
			if err := (buskafka.Config{Brokers: "x", Security: c.sec}).Validate(); (err == nil) != c.ok {
				t.Fatalf("Config.Validate = %v, want ok=%v", err, c.ok)
			}
		})
	}
}

// TestSecurity_PasswordNeverLogged checks the log form of the settings.
func TestSecurity_PasswordNeverLogged(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("x", "security", buskafka.Security{Mechanism: "PLAIN", Username: "u", Password: "hunter22-secret"})
	if strings.Contains(b.String(), "hunter22-secret") || !strings.Contains(b.String(), `"mechanism":"PLAIN"`) {
		t.Fatalf("log line: %s", b.String())
	}
}

// TestSASL_MissingPasswordFile is refused when the client is created.
func TestSASL_MissingPasswordFile(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	_, err := buskafka.NewProducer(log, buskafka.Config{Brokers: "127.0.0.1:1",
		Security: buskafka.Security{Mechanism: "PLAIN", Username: "u", PasswordFile: filepath.Join(t.TempDir(), "missing")}})
	if err == nil || !strings.Contains(err.Error(), "password file") {
		t.Fatalf("NewProducer = %v, want a password file error", err)
	}
}
