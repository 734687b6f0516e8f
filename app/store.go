package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/services/core"
)

// StoreConfig selects and configures the time-series store.
type StoreConfig struct {
	// Kind is "embedded" (SQLite in the data dir) or "opensearch"; empty
	// picks opensearch when OpenSearchURL is set.
	Kind              string
	OpenSearchURL     string
	OpenSearchMode    string
	OpenSearchPrefix  string
	OpenSearchReplica int
	OpenSearchShards  int
	OpenSearchAuth    OpenSearchAuthConfig
}

// RegisterFlags binds the store flags.
func (c *StoreConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Kind, "store", "IOT_STORE", "", "time-series store: embedded (SQLite in the data dir) or opensearch; empty picks opensearch when --opensearch-url is set, else embedded")
	envflag.String(fs, &c.OpenSearchURL, "opensearch-url", "IOT_OPENSEARCH_URL", "", "OpenSearch URL(s), comma-separated")
	envflag.String(fs, &c.OpenSearchMode, "opensearch-index-mode", "IOT_OPENSEARCH_INDEX_MODE", storeopensearch.ModeShared, "OpenSearch index layout: shared (one index) or per-sensor (<prefix>-<device_id>_<sensor_id>)")
	envflag.String(fs, &c.OpenSearchPrefix, "opensearch-prefix", "IOT_OPENSEARCH_PREFIX", "iot", "prefix of the shared OpenSearch indices and template")
	envflag.Int(fs, &c.OpenSearchReplica, "opensearch-replicas", "IOT_OPENSEARCH_REPLICAS", 0, "replicas per OpenSearch shard (0 on a single node)")
	envflag.Int(fs, &c.OpenSearchShards, "opensearch-shards", "IOT_OPENSEARCH_SHARDS", 1, "primary shards per readings index")
	c.OpenSearchAuth.RegisterFlags(fs)
}

// kind resolves the store: without --store an OpenSearch URL selects
// opensearch.
func (c *StoreConfig) kind() string {
	if c.Kind == "" {
		if c.OpenSearchURL != "" {
			return "opensearch"
		}
		return "embedded"
	}
	return c.Kind
}

// Validate checks the store flags.
func (c *StoreConfig) Validate() error {
	var errs []error
	switch c.kind() {
	case "embedded":
	case "opensearch":
		if c.OpenSearchURL == "" {
			errs = append(errs, errors.New("--store=opensearch needs --opensearch-url (IOT_OPENSEARCH_URL)"))
		}
	default:
		errs = append(errs, envflag.Errorf("store", "%q: want embedded or opensearch", c.Kind))
	}
	if c.OpenSearchMode != storeopensearch.ModeShared && c.OpenSearchMode != storeopensearch.ModePerSensor {
		errs = append(errs, envflag.Errorf("opensearch-index-mode", "%q: want shared or per-sensor", c.OpenSearchMode))
	}
	if c.OpenSearchReplica < 0 {
		errs = append(errs, envflag.Errorf("opensearch-replicas", "must not be negative"))
	}
	if c.OpenSearchShards <= 0 {
		errs = append(errs, envflag.Errorf("opensearch-shards", "must be positive"))
	}
	errs = append(errs, c.OpenSearchAuth.Validate())
	return errors.Join(errs...)
}

// storeParts is what the store module provides: the store (embedded), and
// the capabilities only some backends have.
type storeParts struct {
	store.Store
	// search is set on stores that run the consumer search proxy.
	search store.Searcher
	// provisioners create and delete per-sensor indices (and readings)
	// with the sensor.
	provisioners []core.Provisioner
}

// storeNeeded reports whether a role of this process reads or writes
// readings: the pipeline and query, and ingest on the embedded bus (dead
// letters go straight to the store).
func (a *App) storeNeeded() bool {
	return a.roles.Has(RolePipeline) || a.roles.Has(RoleQuery) || (a.roles.Has(RoleIngest) && a.cfg.Bus.KafkaBrokers == "")
}

// initStore opens the time-series store (embedded or OpenSearch); nil when
// no role of this process needs it.
func (a *App) initStore(ctx context.Context) (*storeParts, error) {
	if !a.storeNeeded() {
		return nil, nil
	}
	c := &a.cfg.Store
	p := &storeParts{}
	switch c.kind() {
	case "opensearch":
		var urls []string
		for _, u := range strings.Split(c.OpenSearchURL, ",") {
			if u = strings.TrimSpace(u); u != "" {
				urls = append(urls, u)
			}
		}
		pw, err := c.OpenSearchAuth.password()
		if err != nil {
			return nil, err
		}
		s, err := storeopensearch.Open(ctx, a.log.With("component", "store"), storeopensearch.Config{
			URLs: urls, Prefix: c.OpenSearchPrefix, Mode: c.OpenSearchMode, Replicas: c.OpenSearchReplica, Shards: c.OpenSearchShards,
			Username: c.OpenSearchAuth.Username, Password: pw, CAFile: c.OpenSearchAuth.CAFile,
		})
		if err != nil {
			return nil, fmt.Errorf("open opensearch store: %w", err)
		}
		p.Store, p.search = s, s
		a.onClose(s.Close)
		if a.roles.Has(RoleCore) {
			p.provisioners = append(p.provisioners, osProvisioner{s})
		}
	default:
		s, err := storeembedded.Open(ctx, a.log.With("component", "store"), storeembedded.Config{Path: filepath.Join(a.cfg.DataDir, "readings.db")})
		if err != nil {
			return nil, fmt.Errorf("open embedded store: %w", err)
		}
		p.Store = s
		a.onClose(s.Close)
		a.registerWAL("readings", s)
		if a.roles.Has(RoleCore) {
			p.provisioners = append(p.provisioners, embeddedProvisioner{a})
		}
	}
	a.readyChecks["store"] = p.Ping
	return p, nil
}

// osProvisioner creates and deletes per-sensor indices with the sensor.
type osProvisioner struct{ s *storeopensearch.Store }

func (p osProvisioner) SensorCreated(ctx context.Context, s registry.Sensor) error {
	return p.s.CreateSensorIndex(ctx, store.SensorRef{DeviceID: s.DeviceID, SensorID: s.ID})
}

func (p osProvisioner) SensorDeleted(ctx context.Context, s registry.Sensor) error {
	return p.s.DeleteSensorIndex(ctx, store.SensorRef{DeviceID: s.DeviceID, SensorID: s.ID})
}

// embeddedProvisioner deletes a sensor's readings with the sensor and makes
// the in-process pipeline forget it at once.
type embeddedProvisioner struct{ a *App }

func (p embeddedProvisioner) SensorCreated(context.Context, registry.Sensor) error { return nil }

func (p embeddedProvisioner) SensorDeleted(ctx context.Context, s registry.Sensor) error {
	if pl := p.a.pipeline; pl != nil {
		pl.Forget(s.ID)
	}
	return p.a.store.DeleteSensor(ctx, s.ID)
}
