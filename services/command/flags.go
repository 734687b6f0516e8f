package command

import (
	"errors"
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the command-line settings (`iotplatform serve`, each with its
// IOT_* variable) of commands to devices and device state
// (docs/COMMANDS.md).
type Flags struct {
	MaxPayload    int
	MaxAttributes int
	MaxPending    int
	DefaultTTL    time.Duration
	MaxWait       time.Duration
	PollMaxWait   time.Duration
	PollPerDevice int
	PollTotal     int
}

// RegisterFlags binds the command flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.MaxPayload, "command-max-payload", "IOT_COMMAND_MAX_PAYLOAD", 64<<10, "largest command payload and device answer in bytes")
	envflag.Int(fs, &c.MaxAttributes, "command-max-attributes", "IOT_COMMAND_MAX_ATTRIBUTES", 16<<10, "largest reported or desired attributes document in bytes")
	envflag.Int(fs, &c.MaxPending, "command-max-pending", "IOT_COMMAND_MAX_PENDING", 100, "commands of one device not yet final (queued, sent, delivered); more are refused with resource_exhausted")
	envflag.Duration(fs, &c.DefaultTTL, "command-default-ttl", "IOT_COMMAND_DEFAULT_TTL", time.Hour, "time to live of a command sent without one")
	envflag.Duration(fs, &c.MaxWait, "command-max-wait", "IOT_COMMAND_MAX_WAIT", time.Minute, "longest SendCommand wait for the device's answer")
	envflag.Duration(fs, &c.PollMaxWait, "command-poll-max-wait", "IOT_COMMAND_POLL_MAX_WAIT", time.Minute, "longest HTTP long-poll (GET /commands?wait=) on the HTTP gateway")
	envflag.Int(fs, &c.PollPerDevice, "command-poll-per-device", "IOT_COMMAND_POLL_PER_DEVICE", 2, "HTTP long-polls one device may hold open (429 above)")
	envflag.Int(fs, &c.PollTotal, "command-poll-total", "IOT_COMMAND_POLL_TOTAL", 1000, "HTTP long-polls open at once on the gateway (429 above)")
}

// Validate checks the command flags.
func (c *Flags) Validate() error {
	var errs []error
	if c.MaxPayload <= 0 || c.MaxPayload > 16<<20 {
		errs = append(errs, envflag.Errorf("command-max-payload", "must be between 1 and 16 MiB"))
	}
	if c.MaxAttributes <= 0 || c.MaxAttributes > 1<<20 {
		errs = append(errs, envflag.Errorf("command-max-attributes", "must be between 1 and 1 MiB"))
	}
	if c.MaxPending <= 0 {
		errs = append(errs, envflag.Errorf("command-max-pending", "must be positive"))
	}
	if c.DefaultTTL <= 0 {
		errs = append(errs, envflag.Errorf("command-default-ttl", "must be positive"))
	}
	if c.MaxWait <= 0 {
		errs = append(errs, envflag.Errorf("command-max-wait", "must be positive"))
	}
	if c.PollMaxWait <= 0 {
		errs = append(errs, envflag.Errorf("command-poll-max-wait", "must be positive"))
	}
	if c.PollPerDevice <= 0 || c.PollTotal <= 0 {
		errs = append(errs, errors.New("command-poll-per-device (IOT_COMMAND_POLL_PER_DEVICE) and command-poll-total (IOT_COMMAND_POLL_TOTAL) must be positive"))
	}
	return errors.Join(errs...)
}
