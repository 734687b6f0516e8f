package buskafka

import (
	"context"
	"encoding/json"

	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
)

var _ deadletter.Subscriber = (*Subscriber)(nil)

// SubscribeDeadLetters delivers the letters the producers wrote to the
// deployment's dead-letter topic (bus.DeadLetterTopicFor the readings
// topic) to h, in consumer group "<group>-deadletters", until ctx ends.
// Offsets are committed after h returned nil (at least once: a crash may
// deliver a letter twice). A message that does not decode is delivered as
// a letter of its own with reason "malformed": it is evidence too.
func (s *Subscriber) SubscribeDeadLetters(ctx context.Context, h deadletter.Handler) error {
	cfg := ConsumeConfig{Brokers: s.cfg.Brokers, Group: s.cfg.Group + "-deadletters",
		Topics: []string{bus.DeadLetterTopicFor(s.cfg.Topic)}, MaxBatch: 500, Security: s.cfg.Security}
	return Consume(ctx, s.log, cfg, func(ctx context.Context, msgs []Message) error {
		dls := make([]deadletter.Letter, 0, len(msgs))
		for _, m := range msgs {
			var dl deadletter.Letter
			if err := json.Unmarshal(m.Value, &dl); err != nil {
				dl = deadletter.Letter{Reason: "malformed: undecodable dead letter: " + err.Error(), Payload: m.Value, TimeNS: m.Timestamp.UnixNano()}
			}
			dls = append(dls, dl)
		}
		return h(ctx, dls)
	})
}
