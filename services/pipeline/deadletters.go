package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/store"
)

// DeadLetterConsumer moves dead letters that the gateways wrote to the Kafka
// topic bus.DeadLetterTopic (JSON bus.DeadLetter) into the store, where
// ListDeadLetters finds them. Offsets are committed after the store accepted
// a batch (at least once: a crash may list a letter twice).
type DeadLetterConsumer struct {
	log     *slog.Logger
	brokers string
	group   string
	w       store.Writer
}

// NewDeadLetterConsumer consumes bus.DeadLetterTopic in consumer group
// group into w.
func NewDeadLetterConsumer(log *slog.Logger, brokers, group string, w store.Writer) *DeadLetterConsumer {
	return &DeadLetterConsumer{log: log, brokers: brokers, group: group, w: w}
}

// Run consumes until ctx is done.
func (d *DeadLetterConsumer) Run(ctx context.Context) error {
	c, err := kafka.NewConsumer(&kafka.ConfigMap{
		"bootstrap.servers":      d.brokers,
		"group.id":               d.group,
		"enable.auto.commit":     false,
		"auto.offset.reset":      "earliest",
		"go.logs.channel.enable": false,
	})
	if err != nil {
		return fmt.Errorf("create dead-letter consumer: %w", err)
	}
	defer c.Close()
	if err := c.SubscribeTopics([]string{bus.DeadLetterTopic}, nil); err != nil {
		return fmt.Errorf("subscribe %s: %w", bus.DeadLetterTopic, err)
	}
	for ctx.Err() == nil {
		var dls []bus.DeadLetter
		timeout := 200
		for len(dls) < 500 {
			ev := c.Poll(timeout)
			if ev == nil {
				break
			}
			timeout = 0
			switch e := ev.(type) {
			case *kafka.Message:
				var dl bus.DeadLetter
				if err := json.Unmarshal(e.Value, &dl); err != nil {
					// Keep even an undecodable letter: it is evidence.
					dl = bus.DeadLetter{Reason: "undecodable dead letter: " + err.Error(), Payload: e.Value, TimeNS: e.Timestamp.UnixNano()}
				}
				dls = append(dls, dl)
			case kafka.Error:
				d.log.Warn("dead-letter consumer", "err", e)
			}
		}
		if len(dls) == 0 {
			continue
		}
		for {
			err := d.w.WriteDeadLetters(ctx, dls)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return nil
			}
			d.log.Warn("storing dead letters failed; retrying", "count", len(dls), "err", err)
			time.Sleep(time.Second)
		}
		if _, err := c.Commit(); err != nil {
			d.log.Warn("commit dead-letter offsets", "err", err)
		}
	}
	return nil
}
