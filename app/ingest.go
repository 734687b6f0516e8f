package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iotplatform/iotplatform/gateway/httpgw"
	gwmqtt "github.com/iotplatform/iotplatform/gateway/mqtt"
	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// IngestConfig configures the ingest role: the device edges (HTTP,
// WebSocket, MQTT, IngestService) and the ingest service behind them.
type IngestConfig struct {
	HTTPAddr string
	WSAddr   string
	MQTTAddr string

	HTTPMaxBody    int
	MaxBatch       int
	SensorCacheTTL time.Duration
	StreamInFlight int
	WSIdleTimeout  time.Duration
	MQTTQueue      int
	MQTTOutbound   int
	MQTTReadBuffer int
}

// RegisterFlags binds the ingest flags.
func (c *IngestConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.HTTPAddr, "http-addr", "IOT_HTTP_ADDR", ":8083", "address of the HTTP ingest gateway")
	envflag.String(fs, &c.WSAddr, "ws-addr", "IOT_WS_ADDR", ":8765", "address of the WebSocket ingest gateway")
	envflag.String(fs, &c.MQTTAddr, "mqtt-addr", "IOT_MQTT_ADDR", ":1883", "address of the MQTT ingest gateway")
	envflag.Int(fs, &c.HTTPMaxBody, "http-max-body", "IOT_HTTP_MAX_BODY", 1<<20, "largest HTTP body, WebSocket message and MQTT packet in bytes (HTTP 413 above)")
	envflag.Int(fs, &c.MaxBatch, "ingest-max-batch", "IOT_INGEST_MAX_BATCH", 10000, "most readings in one batch")
	envflag.Duration(fs, &c.SensorCacheTTL, "ingest-sensor-cache-ttl", "IOT_INGEST_SENSOR_CACHE_TTL", cache.TTL, "how long a sensor lookup is reused by the ingest path and the pipeline (registry.SensorCache): the bound on noticing a sensor created, deleted or retyped in another process")
	envflag.Int(fs, &c.StreamInFlight, "ingest-stream-inflight", "IOT_INGEST_STREAM_INFLIGHT", 8, "batches an IngestStream reads ahead of its acks")
	envflag.Duration(fs, &c.WSIdleTimeout, "ws-idle-timeout", "IOT_WS_IDLE_TIMEOUT", 5*time.Minute, "close WebSocket connections without data for this long")
	envflag.Int(fs, &c.MQTTQueue, "mqtt-queue", "IOT_MQTT_QUEUE", 256, "publishes per MQTT client waiting for durability before reading stops")
	envflag.Int(fs, &c.MQTTOutbound, "mqtt-outbound-queue", "IOT_MQTT_OUTBOUND_QUEUE", 16, "packets the MQTT broker may queue for writing to one client (allocated per connection; acks and commands are written directly)")
	envflag.Int(fs, &c.MQTTReadBuffer, "mqtt-read-buffer", "IOT_MQTT_READ_BUFFER", 512, "read buffer of each MQTT connection in bytes (at least 64; larger packets are still read whole)")
}

// Validate checks the ingest flags.
func (c *IngestConfig) Validate() error {
	var errs []error
	for name, v := range map[string]int{"http-max-body": c.HTTPMaxBody, "ingest-max-batch": c.MaxBatch,
		"ingest-stream-inflight": c.StreamInFlight, "mqtt-queue": c.MQTTQueue, "mqtt-outbound-queue": c.MQTTOutbound} {
		if v <= 0 {
			errs = append(errs, envflag.Errorf(name, "must be positive"))
		}
	}
	if c.MQTTReadBuffer < 64 {
		errs = append(errs, envflag.Errorf("mqtt-read-buffer", "must be at least 64 bytes"))
	}
	if c.SensorCacheTTL < 0 {
		errs = append(errs, envflag.Errorf("ingest-sensor-cache-ttl", "must not be negative"))
	}
	if c.WSIdleTimeout <= 0 {
		errs = append(errs, envflag.Errorf("ws-idle-timeout", "must be positive"))
	}
	return errors.Join(errs...)
}

// initIngest starts the gateways and registers IngestService.
func (a *App) initIngest(context.Context) (*ingest.Service, error) {
	c := &a.cfg.Ingest
	// Dead letters: Kafka topic iot.deadletter (the pipeline consumes it
	// into the store), or straight into the store on the embedded bus.
	var dl deadletter.Writer
	switch {
	case a.bus.deadLetters != nil:
		dl = a.bus.deadLetters
	case a.store != nil:
		dl = a.store.Store
	default:
		a.log.Warn("no durable dead-letter writer: invalid MQTT 3.x payloads are only logged and counted")
	}
	if a.bus.embedded != nil && a.roles.Has(RolePipeline) {
		a.readyChecks["bus"] = a.embeddedBusReady
	}
	svc := ingest.New(a.log.With("component", "ingest"), ingest.Config{
		PublishTimeout: a.cfg.Bus.PublishTimeout, SensorCacheTTL: c.SensorCacheTTL, MaxBatch: c.MaxBatch,
		Rate: a.cfg.Limits.IngestRate, Burst: int64(a.cfg.Limits.IngestBurst),
	}, a.reg, telemetry.Publisher(a.bus.pub), dl, a.metrics)

	a.api.Handle(ingestv1connect.NewIngestServiceHandler(ingest.NewHandler(svc, c.StreamInFlight), a.ingestHandlerOptions()...))
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
	hg := httpgw.New(log, a.auth(), svc, httpgw.Config{MaxBody: int64(c.HTTPMaxBody)})
	wg := gwws.New(log, a.auth(), svc, gwws.Config{MaxMessage: int64(c.HTTPMaxBody), IdleTimeout: c.WSIdleTimeout, Streams: a.guards.streams})
	a.addServer("http", c.HTTPAddr, withOps(telemetry.HTTP("http", hg)))
	a.addServer("ws", c.WSAddr, withOps(telemetry.HTTP("ws", wg)))

	g, err := gwmqtt.New(log, a.auth(), svc, gwmqtt.Config{QueueSize: c.MQTTQueue, OutboundQueue: c.MQTTOutbound, ReadBuffer: c.MQTTReadBuffer, MaxPacket: c.HTTPMaxBody, Streams: a.guards.streams}, a.metrics)
	if err != nil {
		return nil, err
	}
	a.enableCommands(svc, hg, wg, g)
	ln, err := net.Listen("tcp", c.MQTTAddr)
	if err != nil {
		return nil, fmt.Errorf("listen mqtt on %s: %w", c.MQTTAddr, err)
	}
	ln = a.capListener("mqtt", ln)
	a.mu.Lock()
	a.addrs["mqtt"] = ln.Addr().String()
	a.mu.Unlock()
	ln = a.listenTLS("mqtt", ln)
	a.addRunner("mqtt", func(ctx context.Context) error { return g.Serve(ctx, ln) })
	return svc, nil
}
