package httpgw

import (
	"errors"
	"flag"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the HTTP ingest gateway's command-line settings (`iotplatform
// serve --http-addr/--http-max-body`, each with its IOT_* variable).
// MaxBody also bounds WebSocket messages and MQTT packets (the app passes
// it to those edges).
type Flags struct {
	Addr    string
	MaxBody int
}

// RegisterFlags binds the HTTP gateway flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Addr, "http-addr", "IOT_HTTP_ADDR", ":8083", "address of the HTTP ingest gateway")
	envflag.Int(fs, &c.MaxBody, "http-max-body", "IOT_HTTP_MAX_BODY", 1<<20, "largest HTTP body, WebSocket message and MQTT packet in bytes (HTTP 413 above)")
}

// Validate checks the HTTP gateway flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.MaxBody <= 0 {
		errs = append(errs, envflag.Errorf("http-max-body", "must be positive"))
	}
	return errors.Join(errs...)
}
