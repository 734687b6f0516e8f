package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/iotplatform/iotplatform/gateway/httpgw"
	gwmqtt "github.com/iotplatform/iotplatform/gateway/mqtt"
	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// IngestConfig configures the ingest role: the device edges (HTTP,
// WebSocket, MQTT, IngestService) and the ingest service behind them, each
// edge's flags declared in its package (httpgw.Flags, ws.Flags, mqtt.Flags)
// and the service's in services/ingest (Flags).
type IngestConfig struct {
	// HTTP is --http-addr and --http-max-body (which also bounds WebSocket
	// messages and MQTT packets).
	HTTP httpgw.Flags
	// Flags are the ingest service's (--ingest-max-batch, ...).
	ingest.Flags
	WS   gwws.Flags
	MQTT gwmqtt.Flags
}

// RegisterFlags binds the ingest flags.
func (c *IngestConfig) RegisterFlags(fs *flag.FlagSet) {
	c.HTTP.RegisterFlags(fs)
	c.Flags.RegisterFlags(fs)
	c.WS.RegisterFlags(fs)
	c.MQTT.RegisterFlags(fs)
}

// Validate checks the ingest flags.
func (c *IngestConfig) Validate() error {
	return errors.Join(c.HTTP.Validate(), c.Flags.Validate(), c.WS.Validate(), c.MQTT.Validate())
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
		PublishTimeout: a.cfg.Bus.PublishTimeout, SensorCacheTTL: c.SensorCacheTTL, Sensors: a.sensorCache(), MaxBatch: c.MaxBatch,
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
	hg := httpgw.New(log, a.auth(), svc, httpgw.Config{MaxBody: int64(c.HTTP.MaxBody)})
	wg := gwws.New(log, a.auth(), svc, gwws.Config{MaxMessage: int64(c.HTTP.MaxBody), IdleTimeout: c.WS.IdleTimeout, Streams: a.guards.streams,
		GoroutinePerConnection: !c.WS.Epoll})
	a.onClose(wg.Close) // after the servers' shutdown: the epoll-read connections get a close frame (1001)
	a.addServer("http", c.HTTP.Addr, withOps(telemetry.HTTP("http", hg)))
	// Under TLS the connections are accepted switchable to non-blocking
	// reads, so that wss:// devices are read through epoll too
	// (gateway/ws/edge.go).
	a.addServer("ws", c.WS.Addr, withOps(telemetry.HTTP("ws", wg))).tlsListener = wg.Listener

	// The gateway serves TLS itself (per connection) so that TLS clients
	// are read through epoll like plain ones (gateway/mqtt/edge.go).
	mqttTLS := a.tls["mqtt"]
	g, err := gwmqtt.New(log, a.auth(), svc, gwmqtt.Config{QueueSize: c.MQTT.Queue, OutboundQueue: c.MQTT.OutboundQueue, ReadBuffer: c.MQTT.ReadBuffer,
		MaxPacket: c.HTTP.MaxBody, Streams: a.guards.streams, GoroutinePerConnection: !c.MQTT.Epoll, Workers: c.MQTT.Workers, TLS: mqttTLS}, a.metrics)
	if err != nil {
		return nil, err
	}
	a.enableCommands(svc, hg, wg, g)
	ln, err := net.Listen("tcp", c.MQTT.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen mqtt on %s: %w", c.MQTT.Addr, err)
	}
	ln = a.capListener("mqtt", ln)
	a.mu.Lock()
	a.addrs["mqtt"] = ln.Addr().String()
	a.mu.Unlock()
	a.log.Info("listening", "server", "mqtt", "addr", ln.Addr().String(), "tls", mqttTLS != nil)
	a.addRunner("mqtt", func(ctx context.Context) error { return g.Serve(ctx, ln) })
	return svc, nil
}
