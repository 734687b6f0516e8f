package buskafka

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
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
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":                  s.cfg.Brokers,
		"group.id":                           s.cfg.Group,
		"enable.auto.commit":                 false,
		"auto.offset.reset":                  "earliest",
		"topic.metadata.refresh.interval.ms": 2000, // notice new per-sensor topics quickly
		"go.logs.channel.enable":             false,
	})
	if err != nil {
		return fmt.Errorf("create kafka consumer: %w", err)
	}
	defer c.Close()
	topic := s.cfg.Topic
	if s.cfg.TopicMode == ModePerSensor {
		topic = PerSensorPattern
	}
	if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	var (
		recs []*busv1.Record
		last = map[kafka.TopicPartition]kafka.Offset{}
	)
	for ctx.Err() == nil {
		recs = recs[:0]
		clear(last)
		timeout := 100
		for len(recs) < s.cfg.MaxBatch {
			ev := c.Poll(timeout)
			if ev == nil {
				break
			}
			timeout = 0
			switch e := ev.(type) {
			case *kafka.Message:
				tp := kafka.TopicPartition{Topic: e.TopicPartition.Topic, Partition: e.TopicPartition.Partition}
				last[tp] = e.TopicPartition.Offset
				var r busv1.Record
				if err := proto.Unmarshal(e.Value, &r); err != nil {
					s.log.Error("undecodable bus record skipped", "topic", *tp.Topic, "offset", e.TopicPartition.Offset, "err", err)
					continue
				}
				recs = append(recs, &r)
			case kafka.Error:
				s.log.Debug("kafka consumer error", "err", e)
			}
		}
		if len(last) == 0 {
			continue
		}
		for backoff := 50 * time.Millisecond; len(recs) > 0; backoff = min(backoff*2, 5*time.Second) {
			err := h(ctx, recs)
			if err == nil {
				break
			}
			s.log.Warn("bus handler failed, redelivering", "records", len(recs), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		offs := make([]kafka.TopicPartition, 0, len(last))
		for tp, off := range last {
			tp.Offset = off + 1
			offs = append(offs, tp)
		}
		if _, err := c.CommitOffsets(offs); err != nil {
			s.log.Warn("kafka commit failed (records will be redelivered)", "err", err)
		}
	}
	return nil
}
