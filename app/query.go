package app

import (
	"context"
	"flag"
)

// QueryConfig configures the query role (owned by the storage work).
type QueryConfig struct{}

// RegisterFlags binds the query flags.
func (c *QueryConfig) RegisterFlags(fs *flag.FlagSet) {}

// Validate checks the query flags.
func (c *QueryConfig) Validate() error { return nil }

// setupQuery registers QueryService and the consumer search proxy.
func (a *App) setupQuery(ctx context.Context) error { return nil }
