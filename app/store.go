package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"

	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/services/core"
)

// StoreConfig selects and configures the time-series store. The
// OpenSearch flags are declared in storeopensearch (Flags); the choice of
// store is the store module's.
type StoreConfig struct {
	// Kind is "embedded" (SQLite in the data dir) or "opensearch"; empty
	// picks opensearch when OpenSearch.URL is set.
	Kind       string
	OpenSearch storeopensearch.Flags
}

// RegisterFlags binds the store flags.
func (c *StoreConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.Kind, "store", "IOT_STORE", "", "time-series store: embedded (SQLite in the data dir) or opensearch; empty picks opensearch when --opensearch-url is set, else embedded")
	c.OpenSearch.RegisterFlags(fs)
}

// kind resolves the store: without --store an OpenSearch URL selects
// opensearch.
func (c *StoreConfig) kind() string {
	if c.Kind == "" {
		if c.OpenSearch.URL != "" {
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
		if c.OpenSearch.URL == "" {
			errs = append(errs, errors.New("--store=opensearch needs --opensearch-url (IOT_OPENSEARCH_URL)"))
		}
	default:
		errs = append(errs, envflag.Errorf("store", "%q: want embedded or opensearch", c.Kind))
	}
	errs = append(errs, c.OpenSearch.Validate())
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
	return a.roles.Has(RolePipeline) || a.roles.Has(RoleQuery) || (a.roles.Has(RoleIngest) && a.cfg.Bus.Kafka.Brokers == "")
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
		oc, err := c.OpenSearch.Config()
		if err != nil {
			return nil, err
		}
		s, err := storeopensearch.Open(ctx, a.log.With("component", "store"), oc)
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
