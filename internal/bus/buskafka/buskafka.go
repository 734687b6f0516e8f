//go:build cgo

package buskafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Producer publishes records and dead letters.
type Producer struct {
	log  *slog.Logger
	cfg  Config
	p    *kafka.Producer
	done chan struct{}
	// authErr is the last SASL/TLS authentication failure the client
	// reported, so errors can say why the brokers refuse us.
	authErr atomic.Pointer[kafka.Error]
}

var _ bus.Publisher = (*Producer)(nil)

// waiter collects the delivery reports of one Publish.
type waiter struct {
	remaining atomic.Int64
	once      sync.Once
	err       atomic.Pointer[error]
	ch        chan struct{}
}

func (w *waiter) report(err error) {
	if err != nil {
		w.err.CompareAndSwap(nil, &err)
	}
	if w.remaining.Add(-1) == 0 {
		w.once.Do(func() { close(w.ch) })
	}
}

// NewProducer connects an idempotent acks=all producer.
func NewProducer(log *slog.Logger, cfg Config) (*Producer, error) {
	cfg.defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cm := kafka.ConfigMap{
		"bootstrap.servers":            cfg.Brokers,
		"enable.idempotence":           true,
		"acks":                         "all",
		"compression.type":             cfg.Compression,
		"linger.ms":                    int(cfg.Linger.Milliseconds()),
		"message.timeout.ms":           int((cfg.PublishTimeout * 6).Milliseconds()),
		"queue.buffering.max.kbytes":   65536,
		"queue.buffering.max.messages": 200000,
		"go.logs.channel.enable":       false,
		"client.id":                    "iotplatform-ingest",
	}
	if err := cfg.Security.apply(cm); err != nil {
		return nil, err
	}
	p, err := kafka.NewProducer(&cm)
	if err != nil {
		return nil, fmt.Errorf("create kafka producer: %w", err)
	}
	pr := &Producer{log: log, cfg: cfg, p: p, done: make(chan struct{})}
	go pr.events()
	return pr, nil
}

func (pr *Producer) events() {
	defer close(pr.done)
	for ev := range pr.p.Events() {
		switch e := ev.(type) {
		case *kafka.Message:
			if w, ok := e.Opaque.(*waiter); ok {
				w.report(e.TopicPartition.Error)
			}
		case kafka.Error:
			if e.Code() == kafka.ErrAuthentication {
				if pr.authErr.Swap(&e) == nil {
					pr.log.Error("kafka authentication failed", "err", e, "security", pr.cfg.Security)
				}
				continue
			}
			if e.IsFatal() {
				pr.log.Error("kafka producer fatal error", "err", e)
			} else {
				pr.log.Debug("kafka producer error", "err", e)
			}
		}
	}
}

// Publish produces recs and waits for all their delivery reports; a
// failure or the timeout yields bus.ErrUnavailable.
func (pr *Producer) Publish(ctx context.Context, recs []*busv1.Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]*kafka.Message, len(recs))
	for i, r := range recs {
		var headers []kafka.Header
		if tp := r.GetTraceparent(); tp != "" {
			// The trace context travels as a header (readable by any
			// Kafka tooling), not in the value.
			headers = []kafka.Header{{Key: TraceparentHeader, Value: []byte(tp)}}
			r = proto.CloneOf(r)
			r.Traceparent = ""
		}
		b, err := proto.Marshal(r)
		if err != nil {
			return fmt.Errorf("marshal record: %w", err)
		}
		topic := pr.cfg.Topic
		if pr.cfg.TopicMode == ModePerSensor {
			topic = SensorTopic(r.GetDeviceId(), r.GetSensorId())
		}
		msgs[i] = &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: strconv.AppendInt(nil, r.GetDeviceId(), 10), Value: b, Headers: headers}
	}
	return pr.produce(ctx, msgs)
}

func (pr *Producer) produce(ctx context.Context, msgs []*kafka.Message) error {
	ctx, cancel := context.WithTimeout(ctx, pr.cfg.PublishTimeout)
	defer cancel()
	w := &waiter{ch: make(chan struct{})}
	w.remaining.Store(int64(len(msgs)))
	for i, m := range msgs {
		m.Opaque = w
		for {
			err := pr.p.Produce(m, nil)
			if err == nil {
				break
			}
			var ke kafka.Error
			if errors.As(err, &ke) && ke.Code() == kafka.ErrQueueFull && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
				continue
			}
			for range msgs[i:] { // never produced: account for them
				w.report(err)
			}
			return fmt.Errorf("kafka produce: %w: %w", bus.ErrUnavailable, err)
		}
	}
	select {
	case <-w.ch:
		if e := w.err.Load(); e != nil {
			return fmt.Errorf("kafka delivery: %w: %w", bus.ErrUnavailable, pr.explain(*e))
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("kafka delivery: %w: %w", bus.ErrUnavailable, pr.explain(ctx.Err()))
	}
}

// WriteDeadLetters writes dls as JSON to the deployment's dead-letter topic
// (bus.DeadLetterTopicFor the readings topic) and waits for
// their delivery.
func (pr *Producer) WriteDeadLetters(ctx context.Context, dls []deadletter.Letter) error {
	topic := bus.DeadLetterTopicFor(pr.cfg.Topic)
	msgs := make([]*kafka.Message, len(dls))
	for i, d := range dls {
		b, err := json.Marshal(d)
		if err != nil {
			return fmt.Errorf("marshal dead letter: %w", err)
		}
		msgs[i] = &kafka.Message{TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key: strconv.AppendInt(nil, d.DeviceID, 10), Value: b}
	}
	return pr.produce(ctx, msgs)
}

// Ping checks the brokers answer (readiness).
func (pr *Producer) Ping(ctx context.Context) error {
	ms := 2000
	if d, ok := ctx.Deadline(); ok {
		ms = max(1, int(time.Until(d).Milliseconds()))
	}
	if _, err := pr.p.GetMetadata(nil, false, ms); err != nil {
		return fmt.Errorf("kafka metadata: %w", pr.explain(err))
	}
	pr.authErr.Store(nil) // the brokers answer: an old failure is over
	return nil
}

// ErrAuthentication marks errors caused by the brokers refusing the
// client's SASL credentials or TLS handshake.
var ErrAuthentication = errors.New("kafka authentication failed")

// explain adds the last authentication failure to err, which otherwise only
// says that a timeout passed.
func (pr *Producer) explain(err error) error {
	if a := pr.authErr.Load(); a != nil {
		return fmt.Errorf("%w (%s): %w", ErrAuthentication, a.String(), err)
	}
	return err
}

// Close flushes outstanding records (bounded) and closes the producer.
func (pr *Producer) Close() error {
	pr.p.Flush(int(pr.cfg.PublishTimeout.Milliseconds()))
	pr.p.Close()
	<-pr.done
	return nil
}

// EnsureTopics creates the shared topic (shared mode) and the dead-letter
// topic if missing.
func (pr *Producer) EnsureTopics(ctx context.Context) error {
	specs := []kafka.TopicSpecification{{Topic: bus.DeadLetterTopicFor(pr.cfg.Topic), NumPartitions: 1, ReplicationFactor: pr.cfg.ReplicationFactor}}
	if pr.cfg.TopicMode == ModeShared {
		specs = append(specs, kafka.TopicSpecification{Topic: pr.cfg.Topic, NumPartitions: pr.cfg.Partitions, ReplicationFactor: pr.cfg.ReplicationFactor})
	}
	return pr.createTopics(ctx, specs)
}

func (pr *Producer) createTopics(ctx context.Context, specs []kafka.TopicSpecification) error {
	a, err := kafka.NewAdminClientFromProducer(pr.p)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	defer a.Close()
	res, err := a.CreateTopics(ctx, specs)
	if err != nil {
		return fmt.Errorf("create topics: %w", pr.explain(err))
	}
	for _, r := range res {
		if c := r.Error.Code(); c != kafka.ErrNoError && c != kafka.ErrTopicAlreadyExists {
			return fmt.Errorf("create topic %s: %w", r.Topic, r.Error)
		}
	}
	return nil
}

// Provisioner creates and deletes per-sensor topics with their sensors
// (core.Provisioner); use it only in ModePerSensor.
type Provisioner struct{ pr *Producer }

// Provisioner returns the per-sensor topic provisioner.
func (pr *Producer) Provisioner() *Provisioner { return &Provisioner{pr} }

// SensorCreated creates the sensor's topic.
func (p *Provisioner) SensorCreated(ctx context.Context, s registry.Sensor) error {
	return p.pr.createTopics(ctx, []kafka.TopicSpecification{{Topic: SensorTopic(s.DeviceID, s.ID), NumPartitions: 1, ReplicationFactor: p.pr.cfg.ReplicationFactor}})
}

// SensorDeleted deletes the sensor's topic.
func (p *Provisioner) SensorDeleted(ctx context.Context, s registry.Sensor) error {
	a, err := kafka.NewAdminClientFromProducer(p.pr.p)
	if err != nil {
		return fmt.Errorf("kafka admin: %w", err)
	}
	defer a.Close()
	res, err := a.DeleteTopics(ctx, []string{SensorTopic(s.DeviceID, s.ID)})
	if err != nil {
		return fmt.Errorf("delete topic: %w", err)
	}
	for _, r := range res {
		if c := r.Error.Code(); c != kafka.ErrNoError && c != kafka.ErrUnknownTopicOrPart {
			return fmt.Errorf("delete topic %s: %w", r.Topic, r.Error)
		}
	}
	return nil
}
