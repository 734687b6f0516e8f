//go:build cgo

package buskafka

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// Consume runs a consumer-group loop until ctx ends: batches of up to
// MaxBatch messages go to h, and offsets are committed only after h returned
// nil; on an error the same batch is handed to h again after a backoff, and
// uncommitted messages go to another group member after a crash or rebalance.
func Consume(ctx context.Context, log *slog.Logger, cfg ConsumeConfig, h RawHandler) error {
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = 500
	}
	cm := kafka.ConfigMap{
		"bootstrap.servers":                  cfg.Brokers,
		"group.id":                           cfg.Group,
		"enable.auto.commit":                 false,
		"auto.offset.reset":                  "earliest",
		"topic.metadata.refresh.interval.ms": 2000, // notice new per-sensor topics quickly
		// A member that died without leaving (kill -9, lost host) holds its
		// partitions until the broker's session timeout: librdkafka's 45 s
		// default stalled those readings that long. 6 s (the broker's
		// smallest allowed, group.min.session.timeout.ms) with a heartbeat
		// every 1.5 s hands them to another member within ~10 s.
		"session.timeout.ms":     6000,
		"heartbeat.interval.ms":  1500,
		"go.logs.channel.enable": false,
	}
	if err := cfg.Security.apply(cm); err != nil {
		return err
	}
	c, err := kafka.NewConsumer(&cm)
	if err != nil {
		return fmt.Errorf("create kafka consumer: %w", err)
	}
	defer c.Close()
	if err := c.SubscribeTopics(cfg.Topics, nil); err != nil {
		return fmt.Errorf("subscribe %v: %w", cfg.Topics, err)
	}
	if cfg.Lag != nil {
		lctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); trackLag(lctx, c, cfg.Lag) }()
		defer func() { stop(); <-done }() // before c.Close
	}
	var (
		msgs []Message
		// last is the highest offset of each partition in the batch, keyed
		// by topic name and partition (a TopicPartition key would hold the
		// topic as a pointer, one per message: every message became its
		// own entry and the commit went to whichever came last in the
		// map's order, often not the highest offset).
		last = map[partitionKey]kafka.Offset{}
		// authFailed keeps a refused login from being logged on every poll.
		authFailed bool
	)
	for ctx.Err() == nil {
		msgs = msgs[:0]
		clear(last)
		timeout := 100
		for len(msgs) < cfg.MaxBatch {
			ev := c.Poll(timeout)
			if ev == nil {
				break
			}
			timeout = 0
			switch e := ev.(type) {
			case *kafka.Message:
				authFailed = false
				tp := kafka.TopicPartition{Topic: e.TopicPartition.Topic, Partition: e.TopicPartition.Partition}
				last[partitionKey{*tp.Topic, tp.Partition}] = e.TopicPartition.Offset
				m := Message{Topic: *tp.Topic, Value: e.Value, Timestamp: e.Timestamp}
				for _, h := range e.Headers {
					if h.Key == TraceparentHeader {
						m.Traceparent = string(h.Value)
					}
				}
				msgs = append(msgs, m)
			case kafka.Error:
				if e.Code() == kafka.ErrAuthentication {
					if !authFailed {
						log.Error("kafka authentication failed", "err", e, "security", cfg.Security)
					}
					authFailed = true
					continue
				}
				log.Debug("kafka consumer error", "err", e)
			}
		}
		if len(last) == 0 {
			continue
		}
		for backoff := 50 * time.Millisecond; ; backoff = min(backoff*2, 5*time.Second) {
			err := h(ctx, msgs)
			if err == nil {
				break
			}
			log.Warn("kafka batch handler failed, redelivering", "messages", len(msgs), "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
		}
		offs := make([]kafka.TopicPartition, 0, len(last))
		for k, off := range last {
			offs = append(offs, kafka.TopicPartition{Topic: &k.topic, Partition: k.partition, Offset: off + 1})
		}
		if _, err := c.CommitOffsets(offs); err != nil {
			log.Warn("kafka commit failed (messages will be redelivered)", "err", err)
		}
	}
	return nil
}

// partitionKey names one partition of one topic.
type partitionKey struct {
	topic     string
	partition int32
}
