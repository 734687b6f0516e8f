package buskafka

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the Kafka bus's command-line settings (`iotplatform serve
// --kafka-*`, each with its IOT_KAFKA_* variable): RegisterFlags binds
// them, Validate checks them, Config turns them into the Config of
// NewProducer and NewSubscriber.
type Flags struct {
	// Brokers selects the Kafka bus; empty: the embedded bus.
	Brokers    string
	TopicMode  string
	Topic      string
	Group      string
	Partitions int
	Security   SecurityFlags
}

// RegisterFlags binds the Kafka flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Brokers, "kafka-brokers", "IOT_KAFKA_BROKERS", "", "Kafka bootstrap servers; empty uses the embedded bus")
	envflag.String(fs, &c.TopicMode, "kafka-topic-mode", "IOT_KAFKA_TOPIC_MODE", ModeShared, "Kafka topic layout: shared (one topic keyed by device) or per-sensor (<device_id>_<sensor_id>)")
	envflag.String(fs, &c.Topic, "kafka-topic", "IOT_KAFKA_TOPIC", DefaultTopic, "the shared readings topic")
	envflag.String(fs, &c.Group, "kafka-group", "IOT_KAFKA_GROUP", "iot-pipeline", "consumer group of the pipeline")
	envflag.Int(fs, &c.Partitions, "kafka-partitions", "IOT_KAFKA_PARTITIONS", 6, "partitions of the shared topic when it is created")
	c.Security.RegisterFlags(fs)
}

// Validate checks the Kafka flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.TopicMode != ModeShared && c.TopicMode != ModePerSensor {
		errs = append(errs, envflag.Errorf("kafka-topic-mode", "%q: want shared or per-sensor", c.TopicMode))
	}
	if c.Brokers != "" && !Available {
		errs = append(errs, fmt.Errorf("kafka-brokers (IOT_KAFKA_BROKERS): %w", ErrNotBuilt))
	}
	if c.Partitions <= 0 {
		errs = append(errs, envflag.Errorf("kafka-partitions", "must be positive"))
	}
	errs = append(errs, c.Security.Validate())
	return errors.Join(errs...)
}

// Config is the bus configuration the flags describe; publishTimeout is
// the platform's --ingest-publish-timeout, shared by every bus.
func (c *Flags) Config(publishTimeout time.Duration) Config {
	return Config{Brokers: c.Brokers, TopicMode: c.TopicMode, Topic: c.Topic,
		Group: c.Group, Partitions: c.Partitions, PublishTimeout: publishTimeout, Security: c.Security.Security()}
}

// SecurityFlags are the flags for SASL authentication and TLS towards the
// Kafka brokers. The password comes from IOT_KAFKA_SASL_PASSWORD or a
// file, never from a flag (flags show in the process list).
type SecurityFlags struct {
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
func (c *SecurityFlags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Mechanism, "kafka-sasl-mechanism", "IOT_KAFKA_SASL_MECHANISM", "", "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL")
	envflag.String(fs, &c.Username, "kafka-sasl-username", "IOT_KAFKA_SASL_USERNAME", "", "Kafka SASL user")
	envflag.String(fs, &c.PasswordFile, "kafka-sasl-password-file", "IOT_KAFKA_SASL_PASSWORD_FILE", "", "file holding the Kafka SASL password (or set IOT_KAFKA_SASL_PASSWORD)")
	envflag.Bool(fs, &c.TLS, "kafka-tls", "IOT_KAFKA_TLS", false, "connect to the Kafka brokers over TLS (implied by --kafka-ca-file)")
	envflag.String(fs, &c.CAFile, "kafka-ca-file", "IOT_KAFKA_CA_FILE", "", "PEM CA bundle verifying the Kafka brokers' certificates; empty: system roots")
	envflag.String(fs, &c.CertFile, "kafka-cert-file", "IOT_KAFKA_CERT_FILE", "", "PEM client certificate for Kafka mutual TLS")
	envflag.String(fs, &c.KeyFile, "kafka-key-file", "IOT_KAFKA_KEY_FILE", "", "PEM private key of --kafka-cert-file")
	c.Password = os.Getenv("IOT_KAFKA_SASL_PASSWORD")
}

// Security is the client security the flags describe (the mechanism
// upper-cased).
func (c *SecurityFlags) Security() Security {
	return Security{Mechanism: strings.ToUpper(c.Mechanism), Username: c.Username, Password: c.Password,
		PasswordFile: c.PasswordFile, TLS: c.TLS, CAFile: c.CAFile, CertFile: c.CertFile, KeyFile: c.KeyFile}
}

// Validate checks the Kafka security flags, naming the variables.
func (c *SecurityFlags) Validate() error {
	if err := c.Security().Validate(); err != nil {
		return fmt.Errorf("%w (IOT_KAFKA_SASL_MECHANISM, IOT_KAFKA_SASL_USERNAME, IOT_KAFKA_SASL_PASSWORD[_FILE], IOT_KAFKA_CERT_FILE/IOT_KAFKA_KEY_FILE)", err)
	}
	return errors.Join(envflag.FileReadable("IOT_KAFKA_SASL_PASSWORD_FILE", c.PasswordFile), envflag.FileReadable("IOT_KAFKA_CA_FILE", c.CAFile),
		envflag.FileReadable("IOT_KAFKA_CERT_FILE", c.CertFile), envflag.FileReadable("IOT_KAFKA_KEY_FILE", c.KeyFile))
}
