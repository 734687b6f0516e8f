package buskafka

import (
	"context"
	"log/slog"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
)

// Subscriber consumes the readings topic(s) in a consumer group.
type Subscriber struct {
	log *slog.Logger
	cfg Config
}

var _ bus.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a subscriber for cfg's topic mode and group.
func NewSubscriber(log *slog.Logger, cfg Config) (*Subscriber, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Subscriber{log: log, cfg: cfg}, nil
}

// Subscribe delivers batches to h until ctx ends. Offsets are committed
// only after h returned nil; on an error the same batch is delivered again
// (after a short backoff), and uncommitted records are redelivered to the
// group after a crash or rebalance.
func (s *Subscriber) Subscribe(ctx context.Context, h bus.Handler) error {
	topic := s.cfg.Topic
	if s.cfg.TopicMode == ModePerSensor {
		topic = PerSensorPattern
	}
	cfg := ConsumeConfig{Brokers: s.cfg.Brokers, Group: s.cfg.Group, Topics: []string{topic}, MaxBatch: s.cfg.MaxBatch, Security: s.cfg.Security}
	return Consume(ctx, s.log, cfg, func(ctx context.Context, msgs []Message) error {
		recs := make([]*busv1.Record, 0, len(msgs))
		for _, m := range msgs {
			var r busv1.Record
			if err := proto.Unmarshal(m.Value, &r); err != nil {
				// Only our producer writes these topics; a record that does
				// not decode has no device or sensor to dead-letter under.
				s.log.Error("undecodable bus record skipped", "topic", m.Topic, "err", err)
				continue
			}
			if m.Traceparent != "" {
				r.Traceparent = m.Traceparent
			}
			recs = append(recs, &r)
		}
		if len(recs) == 0 {
			return nil
		}
		return h(ctx, recs)
	})
}
