package buskafka

import (
	"context"
	"log/slog"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
)

// Subscriber consumes the readings topic(s) in a consumer group.
type Subscriber struct {
	log *slog.Logger
	cfg Config
	// lag is the consumer lag in records (-1: not reported yet).
	lag atomic.Int64
}

var _ bus.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a subscriber for cfg's topic mode and group.
func NewSubscriber(log *slog.Logger, cfg Config) (*Subscriber, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Subscriber{log: log, cfg: cfg}
	s.lag.Store(-1)
	return s, nil
}

// Lag returns the records this member's partitions are behind the end of
// the log, as the client last reported it (every 5 s while subscribed), and
// false before the first report.
func (s *Subscriber) Lag() (int64, bool) {
	n := s.lag.Load()
	return n, n >= 0
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
	cfg := ConsumeConfig{Brokers: s.cfg.Brokers, Group: s.cfg.Group, Topics: []string{topic}, MaxBatch: s.cfg.MaxBatch, Security: s.cfg.Security, Lag: &s.lag}
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
