// Package buskafka is the Kafka bus (confluent-kafka-go): an idempotent
// acks=all producer whose Publish returns once every record's delivery
// report arrived, a consumer group that commits offsets only after the
// handler succeeded, and the per-sensor topic provisioner.
//
// The Kafka client needs cgo: a CGO_ENABLED=0 build compiles nocgo.go
// instead, whose constructors return ErrNotBuilt (see Available).
package buskafka

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"
)

// Topic modes.
const (
	// ModeShared publishes every reading to one topic keyed by device id.
	ModeShared = "shared"
	// ModePerSensor publishes to `<device_id>_<sensor_id>` topics (the
	// original platform's layout), created and deleted with the sensor.
	ModePerSensor = "per-sensor"
	// PerSensorPattern is the consumer's subscription in per-sensor mode.
	PerSensorPattern = "^[0-9]+_[0-9]+$"
	// DefaultTopic is the shared topic.
	DefaultTopic = "iot.readings"
)

// Config configures producer, consumer and provisioner.
type Config struct {
	Brokers string
	// TopicMode is ModeShared (default) or ModePerSensor.
	TopicMode string
	// Topic is the shared topic (default iot.readings).
	Topic string
	// Partitions of the shared topic when it is created (default 6).
	Partitions int
	// ReplicationFactor of created topics (-1: broker default).
	ReplicationFactor int
	// Group is the consumer group id (default iot-pipeline).
	Group string
	// PublishTimeout bounds a Publish (default 5 s).
	PublishTimeout time.Duration
	// Linger is the producer batching delay (default 2 ms).
	Linger time.Duration
	// Compression codec: lz4 (default), zstd, snappy, gzip, none.
	Compression string
	// MaxBatch bounds the records handed to a handler at once (default 1000).
	MaxBatch int
	// Security is SASL authentication and TLS towards the brokers.
	Security Security
}

func (c *Config) defaults() {
	if c.TopicMode == "" {
		c.TopicMode = ModeShared
	}
	if c.Topic == "" {
		c.Topic = DefaultTopic
	}
	if c.Partitions <= 0 {
		c.Partitions = 6
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = -1
	}
	if c.Group == "" {
		c.Group = "iot-pipeline"
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.Linger <= 0 {
		c.Linger = 2 * time.Millisecond
	}
	if c.Compression == "" {
		c.Compression = "lz4"
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 1000
	}
}

// Validate checks the configuration.
func (c Config) Validate() error {
	if c.Brokers == "" {
		return errors.New("kafka brokers must be set")
	}
	if c.TopicMode != "" && c.TopicMode != ModeShared && c.TopicMode != ModePerSensor {
		return fmt.Errorf("kafka topic mode %q: want %s or %s", c.TopicMode, ModeShared, ModePerSensor)
	}
	return c.Security.Validate()
}

// SensorTopic is the per-sensor topic name.
func SensorTopic(device, sensor int64) string {
	return strconv.FormatInt(device, 10) + "_" + strconv.FormatInt(sensor, 10)
}

// Message is one consumed Kafka record.
type Message struct {
	Topic     string
	Value     []byte
	Timestamp time.Time
	// Traceparent is the record's "traceparent" header (W3C trace
	// context), empty when the record was not traced.
	Traceparent string
}

// TraceparentHeader is the Kafka record header carrying a traced record's
// W3C trace context (busv1.Record.traceparent travels here, not in the value).
const TraceparentHeader = "traceparent"

// RawHandler processes one batch; returning nil commits its offsets.
type RawHandler func(ctx context.Context, msgs []Message) error

// ConsumeConfig names what Consume reads.
type ConsumeConfig struct {
	Brokers string
	Group   string
	// Topics may be names or regular expressions starting with ^.
	Topics   []string
	MaxBatch int
	// Security is SASL authentication and TLS towards the brokers.
	Security Security
	// Lag, when set, receives the group's consumer lag in records (summed
	// over the partitions this member holds) every 5 s; it keeps its value
	// (-1 at first) until the first measurement.
	Lag *atomic.Int64
}

// ErrNotBuilt is returned by every constructor of a binary built without
// cgo (CGO_ENABLED=0): confluent-kafka-go links librdkafka through cgo.
var ErrNotBuilt = errors.New("this iotplatform binary was built without the Kafka bus (CGO_ENABLED=0; the Kafka client confluent-kafka-go needs cgo): use a build with CGO_ENABLED=1, or leave the Kafka brokers empty for the embedded bus")
