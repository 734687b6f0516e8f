package app

import (
	"context"
	"flag"
)

// IngestConfig configures the ingest role and the bus (owned by the ingestion work).
type IngestConfig struct {
	HTTPAddr string
	WSAddr   string
	MQTTAddr string
}

// RegisterFlags binds the ingest flags.
func (c *IngestConfig) RegisterFlags(fs *flag.FlagSet) {
	str(fs, &c.HTTPAddr, "http-addr", "IOT_HTTP_ADDR", ":8083", "address of the HTTP ingest gateway")
	str(fs, &c.WSAddr, "ws-addr", "IOT_WS_ADDR", ":8765", "address of the WebSocket ingest gateway")
	str(fs, &c.MQTTAddr, "mqtt-addr", "IOT_MQTT_ADDR", ":1883", "address of the MQTT ingest gateway")
}

// Validate checks the ingest flags.
func (c *IngestConfig) Validate() error { return nil }

// setupBus creates the bus (embedded or Kafka) into a.bus.
func (a *App) setupBus(ctx context.Context) error { return nil }

// setupIngest starts the gateways and registers IngestService.
func (a *App) setupIngest(ctx context.Context) error { return nil }

// busExt is what setupBus provides to the other roles.
type busExt struct{}
