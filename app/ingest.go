package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	gwhttp "github.com/iotplatform/iotplatform/gateway/http"
	gwmqtt "github.com/iotplatform/iotplatform/gateway/mqtt"
	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// IngestConfig configures the ingest role and the bus (owned by the ingestion work).
type IngestConfig struct {
	HTTPAddr string
	WSAddr   string
	MQTTAddr string

	// KafkaBrokers selects the Kafka bus; empty uses the embedded bus.
	KafkaBrokers string
	// EmbeddedBus is "wal" (a write-ahead log in the data dir, the
	// pipeline applies it behind the ack) or "direct" (Publish runs the
	// pipeline and returns after the store commit).
	EmbeddedBus string
	// WALMaxBacklog bounds the records acked but not yet stored.
	WALMaxBacklog   int
	KafkaTopicMode  string
	KafkaTopic      string
	KafkaGroup      string
	KafkaPartitions int
	KafkaSecurity   KafkaSecurityConfig

	HTTPMaxBody    int
	MaxBatch       int
	PublishTimeout time.Duration
	SensorCacheTTL time.Duration
	StreamInFlight int
	WSIdleTimeout  time.Duration
	MQTTQueue      int
}

// RegisterFlags binds the ingest flags.
func (c *IngestConfig) RegisterFlags(fs *flag.FlagSet) {
	str(fs, &c.HTTPAddr, "http-addr", "IOT_HTTP_ADDR", ":8083", "address of the HTTP ingest gateway")
	str(fs, &c.WSAddr, "ws-addr", "IOT_WS_ADDR", ":8765", "address of the WebSocket ingest gateway")
	str(fs, &c.MQTTAddr, "mqtt-addr", "IOT_MQTT_ADDR", ":1883", "address of the MQTT ingest gateway")
	str(fs, &c.KafkaBrokers, "kafka-brokers", "IOT_KAFKA_BROKERS", "", "Kafka bootstrap servers; empty uses the embedded bus")
	str(fs, &c.EmbeddedBus, "embedded-bus", "IOT_EMBEDDED_BUS", "wal", "embedded bus without Kafka: wal (write-ahead log in <data-dir>/wal, acked after its fsync, applied to the store behind) or direct (acked after the store commit)")
	integer(fs, &c.WALMaxBacklog, "wal-max-backlog", "IOT_WAL_MAX_BACKLOG", 500_000, "readings acked into the write-ahead log but not yet stored; beyond it ingest waits, then answers 503")
	str(fs, &c.KafkaTopicMode, "kafka-topic-mode", "IOT_KAFKA_TOPIC_MODE", buskafka.ModeShared, "Kafka topic layout: shared (one topic keyed by device) or per-sensor (<device_id>_<sensor_id>)")
	str(fs, &c.KafkaTopic, "kafka-topic", "IOT_KAFKA_TOPIC", buskafka.DefaultTopic, "the shared readings topic")
	str(fs, &c.KafkaGroup, "kafka-group", "IOT_KAFKA_GROUP", "iot-pipeline", "consumer group of the pipeline")
	integer(fs, &c.KafkaPartitions, "kafka-partitions", "IOT_KAFKA_PARTITIONS", 6, "partitions of the shared topic when it is created")
	c.KafkaSecurity.RegisterFlags(fs)
	integer(fs, &c.HTTPMaxBody, "http-max-body", "IOT_HTTP_MAX_BODY", 1<<20, "largest HTTP body, WebSocket message and MQTT packet in bytes (HTTP 413 above)")
	integer(fs, &c.MaxBatch, "ingest-max-batch", "IOT_INGEST_MAX_BATCH", 10000, "most readings in one batch")
	dur(fs, &c.PublishTimeout, "ingest-publish-timeout", "IOT_INGEST_PUBLISH_TIMEOUT", 5*time.Second, "how long a batch may wait for the bus before it is refused (503)")
	dur(fs, &c.SensorCacheTTL, "ingest-sensor-cache-ttl", "IOT_INGEST_SENSOR_CACHE_TTL", 2*time.Second, "how long a sensor lookup is reused by the gateways")
	integer(fs, &c.StreamInFlight, "ingest-stream-inflight", "IOT_INGEST_STREAM_INFLIGHT", 8, "batches an IngestStream reads ahead of its acks")
	dur(fs, &c.WSIdleTimeout, "ws-idle-timeout", "IOT_WS_IDLE_TIMEOUT", 5*time.Minute, "close WebSocket connections without data for this long")
	integer(fs, &c.MQTTQueue, "mqtt-queue", "IOT_MQTT_QUEUE", 256, "publishes per MQTT client waiting for durability before reading stops")
}

// Validate checks the ingest flags.
func (c *IngestConfig) Validate() error {
	var errs []error
	if c.KafkaTopicMode != buskafka.ModeShared && c.KafkaTopicMode != buskafka.ModePerSensor {
		errs = append(errs, fmt.Errorf("kafka-topic-mode %q: want shared or per-sensor", c.KafkaTopicMode))
	}
	if c.KafkaBrokers != "" && !buskafka.Available {
		errs = append(errs, fmt.Errorf("kafka-brokers (IOT_KAFKA_BROKERS): %w", buskafka.ErrNotBuilt))
	}
	if c.EmbeddedBus != "wal" && c.EmbeddedBus != "direct" {
		errs = append(errs, fmt.Errorf("embedded-bus (IOT_EMBEDDED_BUS) %q: want wal or direct", c.EmbeddedBus))
	}
	if c.WALMaxBacklog <= 0 {
		errs = append(errs, errors.New("wal-max-backlog (IOT_WAL_MAX_BACKLOG) must be positive"))
	}
	if c.PublishTimeout <= 0 {
		errs = append(errs, errors.New("ingest-publish-timeout must be positive"))
	}
	if c.HTTPMaxBody <= 0 || c.MaxBatch <= 0 {
		errs = append(errs, errors.New("http-max-body and ingest-max-batch must be positive"))
	}
	errs = append(errs, c.KafkaSecurity.Validate())
	return errors.Join(errs...)
}

// busExt is what setupBus provides to the other roles: the pipeline
// subscribes with sub; ingest publishes with pub.
type busExt struct {
	pub bus.Publisher
	sub bus.Subscriber
	// busDeadLetters is the Kafka dead-letter writer (nil on the embedded
	// bus, where the store's writer is used).
	busDeadLetters ingest.DeadLetterWriter
	// embedded is set on the embedded bus (direct hand-off or write-ahead
	// log): readiness waits for the in-process pipeline to subscribe.
	embedded interface{ Subscribed() bool }
	// wal is set on the write-ahead log bus (queries wait on it to read
	// their writes).
	wal *buswal.Log
}

func (c *IngestConfig) kafka() buskafka.Config {
	return buskafka.Config{Brokers: c.KafkaBrokers, TopicMode: c.KafkaTopicMode, Topic: c.KafkaTopic,
		Group: c.KafkaGroup, Partitions: c.KafkaPartitions, PublishTimeout: c.PublishTimeout, Security: c.KafkaSecurity.security()}
}

// setupBus creates the bus (embedded or Kafka) into a.ext.
func (a *App) setupBus(ctx context.Context) error {
	c := &a.cfg.Ingest
	if c.KafkaBrokers == "" {
		if a.roles["ingest"] != a.roles["pipeline"] {
			a.log.Warn("the embedded bus needs the ingest and pipeline roles in one process; set --kafka-brokers to split them")
			// Readings taken in here would reach no pipeline (or this
			// pipeline would never see readings): not ready.
			a.readyChecks["bus"] = func(context.Context) error {
				return errors.New("embedded bus without both ingest and pipeline roles in this process; set --kafka-brokers")
			}
		}
		if c.EmbeddedBus == "direct" || (!a.roles["ingest"] && !a.roles["pipeline"]) {
			b := busembedded.New(c.PublishTimeout)
			a.ext.pub, a.ext.sub, a.ext.embedded = b, b, b
			return nil
		}
		l, err := buswal.Open(a.log.With("component", "wal"), buswal.Config{
			Dir: filepath.Join(a.cfg.DataDir, "wal"), MaxBacklog: c.WALMaxBacklog, PublishTimeout: c.PublishTimeout,
		}, a.metrics)
		if err != nil {
			return fmt.Errorf("open write-ahead log: %w", err)
		}
		a.onClose(l.Close)
		a.ext.pub, a.ext.sub, a.ext.embedded, a.ext.wal = l, l, l, l
		return nil
	}
	kc := c.kafka()
	if a.roles["ingest"] || a.roles["core"] {
		p, err := buskafka.NewProducer(a.log.With("component", "kafka"), kc)
		if err != nil {
			return err
		}
		a.onClose(p.Close)
		// Kafka being down must not keep Core from starting: ingest answers
		// 503 (and /readyz is red) until the brokers are back.
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err = p.EnsureTopics(tctx)
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
					err := p.EnsureTopics(tctx)
					cancel()
					if err == nil {
						a.log.Info("kafka topics ready")
						return nil
					}
					a.log.Warn("kafka topics not created yet", "err", err)
				}
			})
		}
		a.ext.pub, a.ext.busDeadLetters = p, p
		a.readyChecks["kafka"] = p.Ping
		if kc.TopicMode == buskafka.ModePerSensor {
			a.provisioners = append(a.provisioners, p.Provisioner())
		}
	}
	if a.roles["pipeline"] {
		s, err := buskafka.NewSubscriber(a.log.With("component", "kafka"), kc)
		if err != nil {
			return err
		}
		a.ext.sub = s
	}
	return nil
}

// setupIngest starts the gateways and registers IngestService.
func (a *App) setupIngest(ctx context.Context) error {
	c := &a.cfg.Ingest
	// Dead letters: Kafka topic iot.deadletter (the pipeline consumes it
	// into the store), or straight into the store on the embedded bus.
	var dl ingest.DeadLetterWriter
	switch {
	case a.ext.busDeadLetters != nil:
		dl = a.ext.busDeadLetters
	case a.ext.deadLetters != nil:
		dl = a.ext.deadLetters
	default:
		a.log.Warn("no durable dead-letter writer: invalid MQTT 3.x payloads are only logged and counted")
	}
	if a.ext.embedded != nil && a.roles["pipeline"] {
		a.readyChecks["bus"] = a.embeddedBusReady
	}
	svc := ingest.New(a.log.With("component", "ingest"), ingest.Config{
		PublishTimeout: c.PublishTimeout, SensorCacheTTL: c.SensorCacheTTL, MaxBatch: c.MaxBatch,
		Rate: a.cfg.Limits.IngestRate, Burst: int64(a.cfg.Limits.IngestBurst),
	}, a.reg, telemetry.Publisher(a.ext.pub), dl, a.metrics)

	a.api.Handle(ingestv1connect.NewIngestServiceHandler(ingest.NewHandler(svc, c.StreamInFlight), a.connectOpts...))
	a.grpcServices = append(a.grpcServices, ingestv1connect.IngestServiceName)

	withOps := func(h http.Handler) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.Handle("GET /metrics", promhttp.HandlerFor(a.metrics, promhttp.HandlerOpts{}))
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		mux.HandleFunc("GET /readyz", a.readyz) // the same checks as the API port's
		return mux
	}
	log := a.log.With("component", "gateway")
	a.addServer("http", c.HTTPAddr, withOps(telemetry.HTTP("http", gwhttp.New(log, a.auth(), svc, gwhttp.Config{MaxBody: int64(c.HTTPMaxBody)}))))
	a.addServer("ws", c.WSAddr, withOps(telemetry.HTTP("ws", gwws.New(log, a.auth(), svc, gwws.Config{MaxMessage: int64(c.HTTPMaxBody), IdleTimeout: c.WSIdleTimeout, Streams: a.guards.streams}))))

	g, err := gwmqtt.New(log, a.auth(), svc, gwmqtt.Config{QueueSize: c.MQTTQueue, MaxPacket: c.HTTPMaxBody, Streams: a.guards.streams}, a.metrics)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", c.MQTTAddr)
	if err != nil {
		return fmt.Errorf("listen mqtt on %s: %w", c.MQTTAddr, err)
	}
	ln = a.capListener("mqtt", ln)
	a.mu.Lock()
	a.addrs["mqtt"] = ln.Addr().String()
	a.mu.Unlock()
	ln = a.listenTLS("mqtt", ln)
	a.addRunner("mqtt", func(ctx context.Context) error { return g.Serve(ctx, ln) })
	return nil
}

// embeddedBusReady is the readiness check for the embedded bus: ingest
// answers 503 until the in-process pipeline has subscribed.
func (a *App) embeddedBusReady(context.Context) error {
	if a.ext.embedded != nil && !a.ext.embedded.Subscribed() {
		return errors.New("embedded bus: pipeline not subscribed")
	}
	return nil
}
