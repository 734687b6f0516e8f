package ws

import (
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the WebSocket ingest gateway's command-line settings
// (`iotplatform serve --ws-addr/--ws-idle-timeout/--ws-epoll`, each with
// its IOT_* variable; the message bound is --http-max-body, httpgw.Flags).
type Flags struct {
	Addr        string
	IdleTimeout time.Duration
	// Epoll reads plain connections through epoll instead of a goroutine
	// each (Config.GoroutinePerConnection is its opposite).
	Epoll bool
}

// RegisterFlags binds the WebSocket gateway flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Addr, "ws-addr", "IOT_WS_ADDR", ":8765", "address of the WebSocket ingest gateway")
	envflag.Duration(fs, &c.IdleTimeout, "ws-idle-timeout", "IOT_WS_IDLE_TIMEOUT", 5*time.Minute, "close WebSocket connections without data for this long")
	envflag.Bool(fs, &c.Epoll, "ws-epoll", "IOT_WS_EPOLL", true, "read plain (not TLS) WebSocket connections through epoll when they have bytes, instead of a goroutine per connection waiting (Linux)")
}

// Validate checks the WebSocket gateway flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.IdleTimeout <= 0 {
		errs = append(errs, envflag.Errorf("ws-idle-timeout", "must be positive"))
	}
	return errors.Join(errs...)
}
