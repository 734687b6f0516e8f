package buswal

import (
	"flag"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the write-ahead log's command-line settings (`iotplatform
// serve --wal-*`, each with its IOT_WAL_* variable).
type Flags struct {
	// WALMaxBacklog bounds the readings acked but not yet stored (Config.MaxBacklog).
	WALMaxBacklog int
	// WALGroupLinger is how long a group commit waits for more publishes
	// while many devices publish (Config.GroupLinger; 0: off).
	WALGroupLinger time.Duration
}

// RegisterFlags binds the write-ahead log flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.WALMaxBacklog, "wal-max-backlog", "IOT_WAL_MAX_BACKLOG", 500_000, "readings acked into the write-ahead log but not yet stored; beyond it ingest waits, then answers 503")
	envflag.Duration(fs, &c.WALGroupLinger, "wal-group-linger", "IOT_WAL_GROUP_LINGER", 2*time.Millisecond, "how long a write-ahead log group commit waits for more publishes before its fsync while at least 256 devices publish per 100 ms (many devices each sending rarely: several times fewer fsyncs; each of their acks waits up to this much longer); 0: never, only those already waiting")
}

// Config returns the log's settings these flags set.
func (c *Flags) Config() Config {
	return Config{MaxBacklog: c.WALMaxBacklog, GroupLinger: c.WALGroupLinger}
}

// Validate checks the write-ahead log flags.
func (c *Flags) Validate() error {
	if c.WALMaxBacklog <= 0 {
		return envflag.Errorf("wal-max-backlog", "must be positive")
	}
	if c.WALGroupLinger < 0 || c.WALGroupLinger > 100*time.Millisecond {
		return envflag.Errorf("wal-group-linger", "must be between 0 and 100ms")
	}
	return nil
}
