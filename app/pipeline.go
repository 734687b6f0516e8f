package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/internal/telemetry"
	"github.com/iotplatform/iotplatform/services/pipeline"
)

// PipelineConfig configures the store and the pipeline (owned by the storage work).
type PipelineConfig struct {
	// Store is "embedded" (SQLite in the data dir) or "opensearch".
	Store             string
	OpenSearchURL     string
	OpenSearchMode    string
	OpenSearchPrefix  string
	OpenSearchReplica int
	OpenSearchShards  int
	OpenSearchAuth    OpenSearchAuthConfig
}

// RegisterFlags binds the pipeline and store flags.
func (c *PipelineConfig) RegisterFlags(fs *flag.FlagSet) {
	str(fs, &c.Store, "store", "IOT_STORE", "", "time-series store: embedded (SQLite in the data dir) or opensearch; empty picks opensearch when --opensearch-url is set, else embedded")
	str(fs, &c.OpenSearchURL, "opensearch-url", "IOT_OPENSEARCH_URL", "", "OpenSearch URL(s), comma-separated")
	str(fs, &c.OpenSearchMode, "opensearch-index-mode", "IOT_OPENSEARCH_INDEX_MODE", storeopensearch.ModeShared, "OpenSearch index layout: shared (one index) or per-sensor (<prefix>-<device_id>_<sensor_id>)")
	str(fs, &c.OpenSearchPrefix, "opensearch-prefix", "IOT_OPENSEARCH_PREFIX", "iot", "prefix of the shared OpenSearch indices and template")
	integer(fs, &c.OpenSearchReplica, "opensearch-replicas", "IOT_OPENSEARCH_REPLICAS", 0, "replicas per OpenSearch shard (0 on a single node)")
	integer(fs, &c.OpenSearchShards, "opensearch-shards", "IOT_OPENSEARCH_SHARDS", 1, "primary shards per readings index")
	c.OpenSearchAuth.RegisterFlags(fs)
}

// storeKind resolves the store: without --store an OpenSearch URL selects
// opensearch.
func (c *PipelineConfig) storeKind() string {
	if c.Store == "" {
		if c.OpenSearchURL != "" {
			return "opensearch"
		}
		return "embedded"
	}
	return c.Store
}

// Validate checks the pipeline flags.
func (c *PipelineConfig) Validate() error {
	switch c.storeKind() {
	case "embedded":
	case "opensearch":
		if c.OpenSearchURL == "" {
			return errors.New("--store=opensearch needs --opensearch-url (IOT_OPENSEARCH_URL)")
		}
	default:
		return fmt.Errorf("--store %q: want embedded or opensearch", c.Store)
	}
	if c.OpenSearchMode != storeopensearch.ModeShared && c.OpenSearchMode != storeopensearch.ModePerSensor {
		return fmt.Errorf("--opensearch-index-mode %q: want shared or per-sensor", c.OpenSearchMode)
	}
	if c.OpenSearchReplica < 0 {
		return errors.New("--opensearch-replicas must not be negative")
	}
	return c.OpenSearchAuth.Validate()
}

// storeExt is what setupStore provides to the other roles.
type storeExt struct {
	store store.Store
	// search is set on stores that run the consumer search proxy.
	search store.Searcher
	// deadLetters stores dead letters durably (the ingest path uses it on
	// the embedded bus).
	deadLetters store.Writer
	pipeline    *pipeline.Pipeline
}

// setupStore opens the time-series store (embedded or OpenSearch) for the
// roles that read or write it.
func (a *App) setupStore(ctx context.Context) error {
	if !a.roles["pipeline"] && !a.roles["query"] && !(a.roles["ingest"] && a.cfg.Ingest.KafkaBrokers == "") {
		return nil
	}
	c := &a.cfg.Pipeline
	switch c.storeKind() {
	case "opensearch":
		var urls []string
		for _, u := range strings.Split(c.OpenSearchURL, ",") {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
		pw, err := c.OpenSearchAuth.password()
		if err != nil {
			return err
		}
		s, err := storeopensearch.Open(ctx, a.log.With("component", "store"), storeopensearch.Config{
			URLs: urls, Prefix: c.OpenSearchPrefix, Mode: c.OpenSearchMode, Replicas: c.OpenSearchReplica, Shards: c.OpenSearchShards,
			Username: c.OpenSearchAuth.Username, Password: pw, CAFile: c.OpenSearchAuth.CAFile,
		})
		if err != nil {
			return fmt.Errorf("open opensearch store: %w", err)
		}
		a.ext.store, a.ext.search = s, s
		a.onClose(s.Close)
		if a.roles["core"] {
			a.provisioners = append(a.provisioners, osProvisioner{s})
		}
	default:
		s, err := storeembedded.Open(ctx, a.log.With("component", "store"), storeembedded.Config{Path: filepath.Join(a.cfg.DataDir, "readings.db")})
		if err != nil {
			return fmt.Errorf("open embedded store: %w", err)
		}
		a.ext.store = s
		a.onClose(s.Close)
		a.registerWAL("readings", s)
		if a.roles["core"] {
			a.provisioners = append(a.provisioners, embeddedProvisioner{a})
		}
	}
	a.ext.deadLetters = a.ext.store
	a.readyChecks["store"] = a.ext.store.Ping
	return nil
}

// osProvisioner creates and deletes per-sensor indices with the sensor.
type osProvisioner struct{ s *storeopensearch.Store }

func (p osProvisioner) SensorCreated(ctx context.Context, s registry.Sensor) error {
	return p.s.CreateSensor(ctx, store.SensorRef{DeviceID: s.DeviceID, SensorID: s.ID})
}

func (p osProvisioner) SensorDeleted(ctx context.Context, s registry.Sensor) error {
	return p.s.DropSensor(ctx, store.SensorRef{DeviceID: s.DeviceID, SensorID: s.ID})
}

// embeddedProvisioner deletes a sensor's readings with the sensor and makes
// the in-process pipeline forget it at once.
type embeddedProvisioner struct{ a *App }

func (p embeddedProvisioner) SensorCreated(context.Context, registry.Sensor) error { return nil }

func (p embeddedProvisioner) SensorDeleted(ctx context.Context, s registry.Sensor) error {
	if pl := p.a.ext.pipeline; pl != nil {
		pl.Forget(s.ID)
	}
	return p.a.ext.store.DeleteSensor(ctx, s.ID)
}

// setupPipeline consumes the bus into the store.
func (a *App) setupPipeline(ctx context.Context) error {
	if a.ext.sub == nil || a.ext.store == nil {
		return errors.New("pipeline role needs a bus subscriber and a store")
	}
	p := pipeline.New(a.log.With("component", "pipeline"), a.reg, telemetry.Writer(a.ext.store), pipeline.Config{}, a.metrics)
	a.ext.pipeline = p
	a.addRunner("pipeline", func(ctx context.Context) error { return a.ext.sub.Subscribe(ctx, telemetry.Handler(p.Handle)) })
	if kc := a.cfg.Ingest.kafka(); kc.Brokers != "" {
		group := kc.Group
		if group == "" {
			group = "iot-pipeline"
		}
		dl := pipeline.NewDeadLetterConsumer(a.log.With("component", "deadletters"), kc.Brokers, kc.Security, group+"-deadletters", kc.Topic, a.ext.store)
		a.addRunner("deadletters", dl.Run)
	}
	return nil
}
