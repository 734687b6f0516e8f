//go:build cgo

package buskafka

import (
	"fmt"
	"os"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// apply adds the security settings to a librdkafka configuration.
func (s Security) apply(cm kafka.ConfigMap) error {
	if err := s.Validate(); err != nil {
		return err
	}
	cm["security.protocol"] = s.Protocol()
	if s.Mechanism != "" {
		pw, err := s.password()
		if err != nil {
			return err
		}
		cm["sasl.mechanisms"] = s.Mechanism
		cm["sasl.username"] = s.Username
		cm["sasl.password"] = pw
	}
	if s.CAFile != "" {
		if _, err := os.Stat(s.CAFile); err != nil {
			return fmt.Errorf("kafka CA file: %w", err)
		}
		cm["ssl.ca.location"] = s.CAFile
	}
	if s.CertFile != "" {
		cm["ssl.certificate.location"] = s.CertFile
		cm["ssl.key.location"] = s.KeyFile
	}
	return nil
}
