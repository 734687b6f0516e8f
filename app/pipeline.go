package app

import (
	"context"
	"flag"
)

// PipelineConfig configures the store and the pipeline (owned by the storage work).
type PipelineConfig struct{}

// RegisterFlags binds the pipeline and store flags.
func (c *PipelineConfig) RegisterFlags(fs *flag.FlagSet) {}

// Validate checks the pipeline flags.
func (c *PipelineConfig) Validate() error { return nil }

// setupStore opens the time-series store (embedded or OpenSearch).
func (a *App) setupStore(ctx context.Context) error { return nil }

// setupPipeline consumes the bus into the store.
func (a *App) setupPipeline(ctx context.Context) error { return nil }

// storeExt is what setupStore provides to the other roles.
type storeExt struct{}
