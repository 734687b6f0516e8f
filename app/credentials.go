package app

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/envflag"
)

// KafkaSecurityConfig holds the flags for SASL authentication and TLS
// towards the Kafka brokers. The password comes from IOT_KAFKA_SASL_PASSWORD
// or a file, never from a flag (flags show in the process list).
type KafkaSecurityConfig struct {
	Mechanism    string
	Username     string
	Password     string
	PasswordFile string
	TLS          bool
	CAFile       string
	CertFile     string
	KeyFile      string
}

// RegisterFlags binds the Kafka security flags.
func (c *KafkaSecurityConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Mechanism, "kafka-sasl-mechanism", "IOT_KAFKA_SASL_MECHANISM", "", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL")
	envflag.String(fs, &c.Username, "kafka-sasl-username", "IOT_KAFKA_SASL_USERNAME", "", "Kafka SASL user")
	envflag.String(fs, &c.PasswordFile, "kafka-sasl-password-file", "IOT_KAFKA_SASL_PASSWORD_FILE", "", "file holding the Kafka SASL password (or set IOT_KAFKA_SASL_PASSWORD)")
	envflag.Bool(fs, &c.TLS, "kafka-tls", "IOT_KAFKA_TLS", false, "connect to the Kafka brokers over TLS (implied by --kafka-ca-file)")
	envflag.String(fs, &c.CAFile, "kafka-ca-file", "IOT_KAFKA_CA_FILE", "", "PEM CA bundle verifying the Kafka brokers' certificates; empty: system roots")
	envflag.String(fs, &c.CertFile, "kafka-cert-file", "IOT_KAFKA_CERT_FILE", "", "PEM client certificate for Kafka mutual TLS")
	envflag.String(fs, &c.KeyFile, "kafka-key-file", "IOT_KAFKA_KEY_FILE", "", "PEM private key of --kafka-cert-file")
	c.Password = os.Getenv("IOT_KAFKA_SASL_PASSWORD")
}

func (c *KafkaSecurityConfig) security() buskafka.Security {
	return buskafka.Security{Mechanism: strings.ToUpper(c.Mechanism), Username: c.Username, Password: c.Password,
		PasswordFile: c.PasswordFile, TLS: c.TLS, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
}

// Validate checks the Kafka security flags, naming the variables.
func (c *KafkaSecurityConfig) Validate() error {
	if err := c.security().Validate(); err != nil {
		return fmt.Errorf("%w (IOT_KAFKA_SASL_MECHANISM, IOT_KAFKA_SASL_USERNAME, IOT_KAFKA_SASL_PASSWORD[_FILE], IOT_KAFKA_CERT_FILE/IOT_KAFKA_KEY_FILE)", err)
	}
	return errors.Join(fileReadable("IOT_KAFKA_SASL_PASSWORD_FILE", c.PasswordFile), fileReadable("IOT_KAFKA_CA_FILE", c.CAFile),
		fileReadable("IOT_KAFKA_CERT_FILE", c.CertFile), fileReadable("IOT_KAFKA_KEY_FILE", c.KeyFile))
}

// OpenSearchAuthConfig holds the flags for authenticating to OpenSearch and
// verifying its certificate. The password comes from IOT_OPENSEARCH_PASSWORD
// or a file, never from a flag.
type OpenSearchAuthConfig struct {
	Username     string
	Password     string
	PasswordFile string
	CAFile       string
}

// RegisterFlags binds the OpenSearch credential flags.
func (c *OpenSearchAuthConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Username, "opensearch-username", "IOT_OPENSEARCH_USERNAME", "", "OpenSearch basic-auth user; empty: no authentication")
	envflag.String(fs, &c.PasswordFile, "opensearch-password-file", "IOT_OPENSEARCH_PASSWORD_FILE", "", "file holding the OpenSearch password (or set IOT_OPENSEARCH_PASSWORD)")
	envflag.String(fs, &c.CAFile, "opensearch-ca-file", "IOT_OPENSEARCH_CA_FILE", "", "PEM CA bundle verifying the OpenSearch nodes' HTTPS certificates; empty: system roots")
	c.Password = os.Getenv("IOT_OPENSEARCH_PASSWORD")
}

// Validate checks the OpenSearch credential flags, naming the variables.
func (c *OpenSearchAuthConfig) Validate() error {
	var errs []error
	if c.Password != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("set IOT_OPENSEARCH_PASSWORD or IOT_OPENSEARCH_PASSWORD_FILE, not both"))
	}
	if c.Username == "" && (c.Password != "" || c.PasswordFile != "") {
		errs = append(errs, errors.New("IOT_OPENSEARCH_PASSWORD[_FILE] is set without IOT_OPENSEARCH_USERNAME"))
	}
	errs = append(errs, fileReadable("IOT_OPENSEARCH_PASSWORD_FILE", c.PasswordFile), fileReadable("IOT_OPENSEARCH_CA_FILE", c.CAFile))
	return errors.Join(errs...)
}

// password returns the OpenSearch password, reading the file when set.
func (c *OpenSearchAuthConfig) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("IOT_OPENSEARCH_PASSWORD_FILE: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// fileReadable reports an unreadable file named by env.
func fileReadable(env, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", env, err)
	}
	f.Close()
	return nil
}
