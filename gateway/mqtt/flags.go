package mqtt

import (
	"errors"
	"flag"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the MQTT ingest gateway's command-line settings (`iotplatform
// serve --mqtt-addr/--mqtt-queue`, each with its IOT_* variable; the packet
// bound is --http-max-body, httpgw.Flags).
type Flags struct {
	Addr  string
	Queue int
}

// RegisterFlags binds the MQTT gateway flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Addr, "mqtt-addr", "IOT_MQTT_ADDR", ":1883", "address of the MQTT ingest gateway")
	envflag.Int(fs, &c.Queue, "mqtt-queue", "IOT_MQTT_QUEUE", 256, "publishes per MQTT client waiting for durability before reading stops")
}

// Validate checks the MQTT gateway flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.Queue <= 0 {
		errs = append(errs, envflag.Errorf("mqtt-queue", "must be positive"))
	}
	return errors.Join(errs...)
}
