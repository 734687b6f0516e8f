// Package deadletter is the contract for payloads that can never become
// readings (malformed, unknown sensor, type mismatch): the Letter kept with
// its reason, never silently dropped. The ingest path and the pipeline
// write letters; the store keeps them (ListDeadLetters); on Kafka they
// travel over the deployment's dead-letter topic first.
package deadletter

import "context"

// Letter is a payload that can never be stored, kept with the reason. On
// Kafka it is JSON-encoded (these tags) as the value of the dead-letter
// topic (bus.DeadLetterTopicFor).
type Letter struct {
	DeviceID int64 `json:"device_id"`
	// SensorID is 0 when the payload could not be attributed to a sensor.
	SensorID int64  `json:"sensor_id,omitempty"`
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
	// Payload is the raw payload as received (base64 in JSON).
	Payload []byte `json:"payload"`
	// TimeNS is when it was dead-lettered, in ns since the epoch.
	TimeNS int64 `json:"time_ns"`
	// Key, when set, identifies the letter: a store keeps a letter written
	// again with the same key once (the pipeline writes a batch's letters
	// again when the batch is retried or replayed after a crash).
	Key string `json:"key,omitempty"`
}

// Writer durably records letters: it returns nil only once they are kept.
type Writer interface {
	WriteDeadLetters(ctx context.Context, dls []Letter) error
}

// Handler processes one batch of letters; returning nil commits it.
type Handler func(ctx context.Context, dls []Letter) error

// Subscriber delivers letters written elsewhere (the Kafka dead-letter
// topic) to a handler until ctx is done.
type Subscriber interface {
	SubscribeDeadLetters(ctx context.Context, h Handler) error
}
