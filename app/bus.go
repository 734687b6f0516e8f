package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"time"

	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/services/core"
)

// BusConfig selects the bus between ingest and the pipeline: the embedded
// write-ahead log (or direct hand-off), or Kafka. Each backend's flags are
// declared in its package (buskafka.Flags, buswal.Flags); the choice
// between them and the publish timeout they share are the bus module's.
type BusConfig struct {
	// Kafka selects the Kafka bus when Kafka.Brokers is set (--kafka-*).
	Kafka buskafka.Flags
	// EmbeddedBus is "wal" (a write-ahead log in the data dir, the
	// pipeline applies it behind the ack) or "direct" (Publish runs the
	// pipeline and returns after the store commit).
	EmbeddedBus string
	// Flags are the write-ahead log's (--wal-max-backlog).
	buswal.Flags
	// PublishTimeout bounds how long a batch waits for the bus to make it
	// durable before ingest refuses it (503).
	PublishTimeout time.Duration

	// provided is set when New was given the bus (WithBus).
	provided bool
}

// RegisterFlags binds the bus flags.
func (c *BusConfig) RegisterFlags(fs *flag.FlagSet) {
	c.Kafka.RegisterFlags(fs)
	envflag.String(fs, &c.EmbeddedBus, "embedded-bus", "IOT_EMBEDDED_BUS", "wal", "embedded bus without Kafka: wal (write-ahead log in <data-dir>/wal, acked after its fsync, applied to the store behind) or direct (acked after the store commit)")
	c.Flags.RegisterFlags(fs)
	envflag.Duration(fs, &c.PublishTimeout, "ingest-publish-timeout", "IOT_INGEST_PUBLISH_TIMEOUT", 5*time.Second, "how long a batch may wait for the bus before it is refused (503)")
}

// Validate checks the bus flags.
func (c *BusConfig) Validate() error {
	var errs []error
	if c.EmbeddedBus != "wal" && c.EmbeddedBus != "direct" {
		errs = append(errs, envflag.Errorf("embedded-bus", "%q: want wal or direct", c.EmbeddedBus))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, envflag.Errorf("ingest-publish-timeout", "must be positive"))
	}
	errs = append(errs, c.Kafka.Validate(), c.Flags.Validate())
	return errors.Join(errs...)
}

// validateRoles refuses role sets the bus cannot connect: on the embedded
// bus, ingest and pipeline hand readings over inside one process, so one
// without the other would take readings no pipeline ever stores (or run a
// pipeline that never sees any).
func (c *BusConfig) validateRoles(roles Roles) error {
	if c.Kafka.Brokers == "" && !c.provided && roles.Has(RoleIngest) != roles.Has(RolePipeline) {
		return fmt.Errorf("--roles (IOT_ROLES) %s: on the embedded bus the ingest and pipeline roles must run in one process; set --kafka-brokers (IOT_KAFKA_BROKERS) to run them apart", roles)
	}
	return nil
}

// busParts is what the bus module provides.
type busParts struct {
	// pub is set for the ingest and core roles, sub for the pipeline.
	pub bus.Publisher
	sub bus.Subscriber
	// deadLetters is the Kafka dead-letter writer (nil on the embedded
	// bus, where the store's writer is used); deadLetterSub consumes what
	// it wrote, for the pipeline role.
	deadLetters   deadletter.Writer
	deadLetterSub deadletter.Subscriber
	// embedded is set on the embedded bus (direct hand-off or write-ahead
	// log): readiness waits for the in-process pipeline to subscribe.
	embedded interface{ Subscribed() bool }
	// wal is set on the write-ahead log bus (queries wait on it to read
	// their writes).
	wal *buswal.Log
	// provisioners create and delete per-sensor topics with the sensor.
	provisioners []core.Provisioner
}

// initBus opens the bus: Kafka when --kafka-brokers is set, else the
// write-ahead log (or the direct hand-off) for the in-process pipeline.
func (a *App) initBus(ctx context.Context) (*busParts, error) {
	c := &a.cfg.Bus
	p := &busParts{}
	if o := a.opts; o.pub != nil {
		p.pub, p.sub = o.pub, o.sub
		if e, ok := o.sub.(interface{ Subscribed() bool }); ok {
			p.embedded = e
		}
		return p, nil
	}
	if c.Kafka.Brokers == "" {
		if c.EmbeddedBus == "direct" || (!a.roles.Has(RoleIngest) && !a.roles.Has(RolePipeline)) {
			b := busembedded.New(c.PublishTimeout)
			p.pub, p.sub, p.embedded = b, b, b
			return p, nil
		}
		wc := c.Flags.Config()
		wc.Dir, wc.PublishTimeout = filepath.Join(a.cfg.DataDir, "wal"), c.PublishTimeout
		l, err := buswal.Open(a.log.With("component", "wal"), wc, a.metrics)
		if err != nil {
			return nil, fmt.Errorf("open write-ahead log: %w", err)
		}
		a.onClose(l.Close)
		p.pub, p.sub, p.embedded, p.wal = l, l, l, l
		return p, nil
	}
	kc := c.Kafka.Config(c.PublishTimeout)
	if a.roles.Has(RoleIngest) || a.roles.Has(RoleCore) {
		pr, err := buskafka.NewProducer(a.log.With("component", "kafka"), kc)
		if err != nil {
			return nil, err
		}
		a.onClose(pr.Close)
		// Kafka being down must not keep Core from starting: ingest answers
		// 503 (and /readyz is red) until the brokers are back.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = pr.EnsureTopics(tctx)
		cancel()
		if err != nil {
			a.log.Warn("kafka topics not created yet, retrying in the background", "err", err)
			a.addRunner("kafka-topics", func(ctx context.Context) error {
				for {
					select {
					case <-ctx.Done():
						return nil
					case <-time.After(5 * time.Second):
					}
					tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					err := pr.EnsureTopics(tctx)
					cancel()
					if err == nil {
						a.log.Info("kafka topics ready")
						return nil
					}
					a.log.Warn("kafka topics not created yet", "err", err)
				}
			})
		}
		p.pub, p.deadLetters = pr, pr
		a.readyChecks["kafka"] = pr.Ping
		if kc.TopicMode == buskafka.ModePerSensor {
			p.provisioners = append(p.provisioners, pr.Provisioner())
		}
	}
	if a.roles.Has(RolePipeline) {
		s, err := buskafka.NewSubscriber(a.log.With("component", "kafka"), kc)
		if err != nil {
			return nil, err
		}
		p.sub, p.deadLetterSub = s, s
	}
	return p, nil
}

// embeddedBusReady is the readiness check for the embedded bus: ingest
// answers 503 until the in-process pipeline has subscribed.
func (a *App) embeddedBusReady(context.Context) error {
	if a.bus.embedded != nil && !a.bus.embedded.Subscribed() {
		return errors.New("embedded bus: pipeline not subscribed")
	}
	return nil
}
