package buswal

import (
	"flag"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the write-ahead log's command-line settings (`iotplatform
// serve --wal-*`, each with its IOT_WAL_* variable).
type Flags struct {
	// WALMaxBacklog bounds the readings acked but not yet stored (Config.MaxBacklog).
	WALMaxBacklog int
}

// RegisterFlags binds the write-ahead log flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.WALMaxBacklog, "wal-max-backlog", "IOT_WAL_MAX_BACKLOG", 500_000, "readings acked into the write-ahead log but not yet stored; beyond it ingest waits, then answers 503")
}

// Validate checks the write-ahead log flags.
func (c *Flags) Validate() error {
	if c.WALMaxBacklog <= 0 {
		return envflag.Errorf("wal-max-backlog", "must be positive")
	}
	return nil
}
