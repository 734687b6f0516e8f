// Package bus is the contract between the ingest path and the pipeline:
// validated readings are published as busv1.Record and consumed in batches.
// Backends: buswal (a write-ahead log on disk, the embedded default),
// busembedded (in-process hand-off) and buskafka. All pass bustest.Run.
package bus

import (
	"context"
	"errors"
	"strings"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
)

// ErrUnavailable means the bus could not take the records in time; nothing
// was acknowledged and the caller must refuse (HTTP 503, error frame,
// withheld PUBACK).
var ErrUnavailable = errors.New("bus unavailable")

// Publisher publishes records. Publish returns nil only once every record is
// durable (write-ahead log: fsynced; direct hand-off: committed to the
// store; Kafka: acks=all delivery report).
// Records of one device keep their order.
type Publisher interface {
	Publish(ctx context.Context, recs []*busv1.Record) error
}

// Bounded is implemented by a Publisher whose Publish bounds its own wait
// for room (backlog, queue) by PublishTimeout: a caller with the same or a
// longer bound needs no deadline of its own (a context and a timer per
// publish). Once records are handed over, Publish waits for their outcome.
type Bounded interface {
	PublishTimeout() time.Duration
}

// Handler processes one batch of records. Returning nil commits the batch
// (Kafka offsets); an error means the batch will be delivered again.
type Handler func(ctx context.Context, recs []*busv1.Record) error

// Subscriber delivers published records to a handler until ctx is done.
type Subscriber interface {
	Subscribe(ctx context.Context, h Handler) error
}

// DeadLetterTopic is the Kafka topic dead letters (deadletter.Letter, as
// JSON) are written to; the pipeline role consumes it into the store.
const DeadLetterTopic = "iot.deadletter"

// DeadLetterTopicFor is the dead-letter topic of the deployment whose
// shared readings topic is readingsTopic: "<topic without .readings>.deadletter"
// (iot.readings → iot.deadletter, acme.readings → acme.deadletter,
// plant-7 → plant-7.deadletter), so deployments sharing a broker never read
// each other's dead letters.
func DeadLetterTopicFor(readingsTopic string) string {
	if readingsTopic == "" {
		return DeadLetterTopic
	}
	return strings.TrimSuffix(readingsTopic, ".readings") + ".deadletter"
}
