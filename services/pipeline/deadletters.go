package pipeline

import (
	"context"
	"encoding/json"
	"log/slog"

	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/store"
)

// DeadLetterConsumer moves dead letters that the gateways wrote to the Kafka
// topic bus.DeadLetterTopic (JSON bus.DeadLetter) into the store, where
// ListDeadLetters finds them. Offsets are committed after the store accepted
// a batch (at least once: a crash may list a letter twice).
type DeadLetterConsumer struct {
	log     *slog.Logger
	brokers string
	sec     buskafka.Security
	group   string
	topic   string
	w       store.Writer
}

// NewDeadLetterConsumer consumes the dead-letter topic of the deployment
// whose readings topic is readingsTopic (bus.DeadLetterTopicFor) in
// consumer group group into w, authenticating to the brokers with sec.
func NewDeadLetterConsumer(log *slog.Logger, brokers string, sec buskafka.Security, group, readingsTopic string, w store.Writer) *DeadLetterConsumer {
	return &DeadLetterConsumer{log: log, brokers: brokers, sec: sec, group: group, topic: bus.DeadLetterTopicFor(readingsTopic), w: w}
}

// Run consumes until ctx is done.
func (d *DeadLetterConsumer) Run(ctx context.Context) error {
	cfg := buskafka.ConsumeConfig{Brokers: d.brokers, Group: d.group, Topics: []string{d.topic}, MaxBatch: 500, Security: d.sec}
	return buskafka.Consume(ctx, d.log, cfg, func(ctx context.Context, msgs []buskafka.Message) error {
		dls := make([]bus.DeadLetter, 0, len(msgs))
		for _, m := range msgs {
			var dl bus.DeadLetter
			if err := json.Unmarshal(m.Value, &dl); err != nil {
				// Keep even an undecodable letter: it is evidence.
				dl = bus.DeadLetter{Reason: "malformed: undecodable dead letter: " + err.Error(), Payload: m.Value, TimeNS: m.Timestamp.UnixNano()}
			}
			dls = append(dls, dl)
		}
		return d.w.WriteDeadLetters(ctx, dls)
	})
}
