package buskafka

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// SASL mechanisms the clients support.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Security says how the clients authenticate to the brokers and whether the
// connection is encrypted. The zero value is PLAINTEXT without SASL.
type Security struct {
	// Mechanism is the SASL mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512,
	// or empty for no SASL.
	Mechanism string
	// Username is the SASL user.
	Username string
	// Password is the SASL password. It is never logged.
	Password string
	// PasswordFile, when Password is empty, is read for the password
	// (surrounding white space trimmed) each time a client is created.
	PasswordFile string
	// TLS encrypts the connection (SSL or SASL_SSL). Setting CAFile or
	// CertFile turns it on too.
	TLS bool
	// CAFile is a PEM bundle verifying the brokers' certificates; empty uses
	// the system roots.
	CAFile string
	// CertFile and KeyFile are an optional PEM client certificate (mutual TLS).
	CertFile, KeyFile string
}

// Protocol is the librdkafka security.protocol the settings amount to.
func (s Security) Protocol() string {
	tls := s.TLS || s.CAFile != "" || s.CertFile != ""
	switch {
	case s.Mechanism != "" && tls:
		return "sasl_ssl"
	case s.Mechanism != "":
		return "sasl_plaintext"
	case tls:
		return "ssl"
	}
	return "plaintext"
}

// LogValue shows the settings without the password.
func (s Security) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("protocol", s.Protocol()),
		slog.String("mechanism", s.Mechanism),
		slog.String("username", s.Username),
		slog.String("ca_file", s.CAFile),
		slog.String("cert_file", s.CertFile),
	)
}

// Validate checks the settings without reading any file.
func (s Security) Validate() error {
	var errs []error
	switch s.Mechanism {
	case "":
		if s.Username != "" || s.Password != "" || s.PasswordFile != "" {
			errs = append(errs, errors.New("kafka SASL username/password set without a SASL mechanism"))
		}
	case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		if s.Username == "" {
			errs = append(errs, fmt.Errorf("kafka SASL mechanism %s needs a username", s.Mechanism))
		}
		if s.Password == "" && s.PasswordFile == "" {
			errs = append(errs, fmt.Errorf("kafka SASL mechanism %s needs a password or a password file", s.Mechanism))
		}
		if s.Password != "" && s.PasswordFile != "" {
			errs = append(errs, errors.New("kafka SASL: set a password or a password file, not both"))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka SASL mechanism %q: want %s, %s or %s", s.Mechanism, MechanismPlain, MechanismScramSHA256, MechanismScramSHA512))
	}
	if (s.CertFile == "") != (s.KeyFile == "") {
		errs = append(errs, errors.New("kafka TLS client certificate and key must be set together"))
	}
	return errors.Join(errs...)
}

// password returns the password, reading PasswordFile when needed.
func (s Security) password() (string, error) {
	if s.Password != "" || s.PasswordFile == "" {
		return s.Password, nil
	}
	b, err := os.ReadFile(s.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("kafka SASL password file: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("kafka SASL password file %s is empty", s.PasswordFile)
	}
	return pw, nil
}
