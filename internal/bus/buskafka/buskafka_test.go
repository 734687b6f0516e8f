//go:build cgo

package buskafka_test

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

var seq atomic.Int64

// factory builds backends on brokers; mock, when set, creates topics on the
// librdkafka mock cluster (which has no admin API).
func factory(brokers string, mock *kafka.MockCluster) bustest.Factory {
	return func(t *testing.T) bustest.Backend {
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		n := strconv.FormatInt(time.Now().UnixNano(), 36) + strconv.FormatInt(seq.Add(1), 10)
		cfg := buskafka.Config{Brokers: brokers, Topic: "test.readings." + n, Group: "test-" + n, Partitions: 3, ReplicationFactor: 1}
		p, err := buskafka.NewProducer(log, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if mock != nil {
			if err := mock.CreateTopic(cfg.Topic, 3, 1); err != nil {
				t.Fatal(err)
			}
		} else if err := p.EnsureTopics(ctx); err != nil {
			t.Fatal(err)
		}
		return bustest.Backend{
			Pub: p,
			NewSub: func() bus.Subscriber {
				s, err := buskafka.NewSubscriber(log, cfg)
				if err != nil {
					t.Fatal(err)
				}
				return s
			},
			Unavailable: func() bus.Publisher {
				bad := cfg
				bad.Brokers = "127.0.0.1:1"
				bad.PublishTimeout = time.Second
				p, err := buskafka.NewProducer(log, bad)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { p.Close() })
				return p
			},
		}
	}
}

// TestConformance runs the bus suite against the real broker.
func TestConformance(t *testing.T) {
	bustest.Run(t, factory(testenv.KafkaBrokers(t), nil))
}

// TestConformance_MockCluster is a fast extra run on librdkafka's mock
// broker (never instead of the real one).
func TestConformance_MockCluster(t *testing.T) {
	mc, err := kafka.NewMockCluster(1)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	bustest.Run(t, factory(mc.BootstrapServers(), mc))
}

func TestConfig_Validate(t *testing.T) {
	for _, c := range []struct {
		cfg buskafka.Config
		ok  bool
	}{
		{buskafka.Config{Brokers: "x"}, true},
		{buskafka.Config{Brokers: "x", TopicMode: "per-sensor"}, true},
		{buskafka.Config{}, false},
		{buskafka.Config{Brokers: "x", TopicMode: "per-device"}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v", c.cfg, err)
		}
	}
	if got := buskafka.SensorTopic(3, 4); got != "3_4" {
		t.Fatal(got)
	}
}

// TestPerSensorTopics checks the provisioner and the regex subscription of
// per-sensor mode on the real broker.
func TestPerSensorTopics(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	dev := time.Now().UnixNano()%1_000_000_000 + 1_000_000_000 // unique per run
	cfg := buskafka.Config{Brokers: brokers, TopicMode: buskafka.ModePerSensor, Group: "test-ps-" + strconv.FormatInt(dev, 10), ReplicationFactor: 1}
	p, err := buskafka.NewProducer(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sen := registry.Sensor{ID: 5, DeviceID: dev}
	if err := p.Provisioner().SensorCreated(ctx, sen); err != nil {
		t.Fatal(err)
	}
	if err := p.Publish(ctx, []*busv1.Record{bustest.Rec(dev, 5, 1), bustest.Rec(dev, 5, 2)}); err != nil {
		t.Fatal(err)
	}
	s, err := buskafka.NewSubscriber(log, cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan int64, 100)
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- s.Subscribe(sctx, func(_ context.Context, recs []*busv1.Record) error {
			for _, r := range recs {
				if r.GetDeviceId() == dev {
					got <- r.GetTimestampNs()
				}
			}
			return nil
		})
	}()
	for want := int64(1); want <= 2; want++ {
		select {
		case ts := <-got:
			if ts != want {
				t.Fatalf("got record %d, want %d", ts, want)
			}
		case <-ctx.Done():
			t.Fatal("records of the per-sensor topic not delivered")
		}
	}
	scancel()
	<-done
	if err := p.Provisioner().SensorDeleted(ctx, sen); err != nil {
		t.Fatal(err)
	}
}
