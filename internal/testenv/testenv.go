// Package testenv gives tests the addresses of the real services started by
// scripts/services/test-services.sh (PostgreSQL, Kafka, OpenSearch).
//
// `make test` starts them and sets IOT_TEST_REQUIRE_SERVICES=1, so a missing
// service fails the run; a plain `go test` without them skips those tests,
// and `go test -short` (make test-short) always does.
package testenv

import (
	"os"
	"runtime"
	"testing"
	"time"
)

func get(t testing.TB, env, what string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("needs a real %s: skipped in -short mode (make test-short)", what)
	}
	v := os.Getenv(env)
	if v != "" {
		return v
	}
	if os.Getenv("IOT_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s is required (set %s; `make test` starts it via scripts/services/test-services.sh)", what, env)
	}
	t.Skipf("%s not set: run `make test` to start a real %s", env, what)
	return ""
}

// PostgresDSN returns the DSN of the test PostgreSQL server.
func PostgresDSN(t testing.TB) string { return get(t, "IOT_TEST_POSTGRES_DSN", "PostgreSQL") }

// KafkaBrokers returns the bootstrap servers of the test Kafka broker.
func KafkaBrokers(t testing.TB) string { return get(t, "IOT_TEST_KAFKA_BROKERS", "Kafka") }

// OpenSearchURL returns the URL of the test OpenSearch node.
func OpenSearchURL(t testing.TB) string { return get(t, "IOT_TEST_OPENSEARCH_URL", "OpenSearch") }

// KafkaSASL is the SASL listener of the test Kafka broker: one user that
// may authenticate with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
type KafkaSASL struct {
	// Brokers are the bootstrap servers of the SASL_PLAINTEXT listener.
	Brokers string
	// Username is the SASL user.
	Username string
	// PasswordFile holds the user's password.
	PasswordFile string
}

// KafkaSASLListener returns the test broker's SASL listener.
func KafkaSASLListener(t testing.TB) KafkaSASL {
	t.Helper()
	return KafkaSASL{
		Brokers:      get(t, "IOT_TEST_KAFKA_SASL_BROKERS", "Kafka SASL listener"),
		Username:     get(t, "IOT_TEST_KAFKA_SASL_USERNAME", "Kafka SASL listener"),
		PasswordFile: get(t, "IOT_TEST_KAFKA_SASL_PASSWORD_FILE", "Kafka SASL listener"),
	}
}

// PostgresCAFile returns the CA (the self-signed server certificate) of the
// test PostgreSQL server's TLS, for sslrootcert.
func PostgresCAFile(t testing.TB) string {
	return get(t, "IOT_TEST_POSTGRES_CA_FILE", "PostgreSQL TLS certificate")
}

// SettledGoroutines is the fewest goroutines seen over 1.5 s: a count
// that goroutines ending meanwhile do not inflate (a closed connection's,
// and the epoll edges' idle readers and workers, which end after 1 s).
func SettledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 30 {
		time.Sleep(50 * time.Millisecond)
		n = min(n, runtime.NumGoroutine())
	}
	return n
}
