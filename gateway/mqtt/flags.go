package mqtt

import (
	"errors"
	"flag"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the MQTT ingest gateway's command-line settings (`iotplatform
// serve --mqtt-addr/--mqtt-queue/--mqtt-outbound-queue/
// --mqtt-read-buffer/--mqtt-epoll/--mqtt-workers`, each with its IOT_* variable; the packet
// bound is --http-max-body, httpgw.Flags).
type Flags struct {
	Addr  string
	Queue int
	// OutboundQueue and ReadBuffer size each connection's broker buffers.
	OutboundQueue int
	ReadBuffer    int
	// Epoll reads clients through epoll instead of two
	// goroutines per connection (Config.GoroutinePerConnection).
	Epoll bool
	// Workers bounds the goroutines that ingest and ack (Config.Workers).
	Workers int
}

// RegisterFlags binds the MQTT gateway flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Addr, "mqtt-addr", "IOT_MQTT_ADDR", ":1883", "address of the MQTT ingest gateway")
	envflag.Int(fs, &c.Queue, "mqtt-queue", "IOT_MQTT_QUEUE", 256, "publishes per MQTT client waiting for durability before reading stops")
	envflag.Int(fs, &c.OutboundQueue, "mqtt-outbound-queue", "IOT_MQTT_OUTBOUND_QUEUE", 16, "packets the MQTT broker may queue for writing to one client (allocated per connection; acks and commands are written directly)")
	envflag.Bool(fs, &c.Epoll, "mqtt-epoll", "IOT_MQTT_EPOLL", true, "read MQTT clients (plain TCP and TLS) through epoll when they have bytes, instead of two goroutines per connection waiting (Linux)")
	envflag.Int(fs, &c.Workers, "mqtt-workers", "IOT_MQTT_WORKERS", 8, "goroutines that check MQTT publishes, make them durable and write their PUBACKs; each takes every client's waiting publishes into one bus publish")
	envflag.Int(fs, &c.ReadBuffer, "mqtt-read-buffer", "IOT_MQTT_READ_BUFFER", 512, "read buffer of each MQTT connection in bytes (at least 64; larger packets are still read whole)")
}

// Validate checks the MQTT gateway flags.
func (c *Flags) Validate() error {
	var errs []error
	for name, v := range map[string]int{"mqtt-queue": c.Queue, "mqtt-outbound-queue": c.OutboundQueue, "mqtt-workers": c.Workers} {
		if v <= 0 {
			errs = append(errs, envflag.Errorf(name, "must be positive"))
		}
	}
	if c.ReadBuffer < 64 {
		errs = append(errs, envflag.Errorf("mqtt-read-buffer", "must be at least 64 bytes"))
	}
	return errors.Join(errs...)
}
