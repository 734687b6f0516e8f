package ingest

import (
	"errors"
	"flag"
	"math"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/envflag"
)

// RateFlags are the default per-device ingest limit's command-line
// settings (`iotplatform serve --ingest-rate/--ingest-burst`; Config.Rate
// and Config.Burst).
type RateFlags struct {
	// IngestRate (readings/s per device, all edges together; 0: unlimited)
	// and IngestBurst are the defaults a device's own limit in Core overrides.
	IngestRate  float64
	IngestBurst int
}

// RegisterFlags binds the ingest limit flags.
func (c *RateFlags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Float64(fs, &c.IngestRate, "ingest-rate", "IOT_INGEST_RATE", 0, "default ingest limit of a device in readings/s over all edges (HTTP 429, resource_exhausted, MQTT 5 reason 0x96); 0: unlimited; a device's ingest_limit in Core overrides it")
	envflag.Int(fs, &c.IngestBurst, "ingest-burst", "IOT_INGEST_BURST", 0, "default burst of a device's ingest limit in readings; 0: one second's worth of --ingest-rate")
}

// Validate checks the ingest limit flags.
func (c *RateFlags) Validate() error {
	var errs []error
	if c.IngestBurst < 0 {
		errs = append(errs, envflag.Errorf("ingest-burst", "must not be negative"))
	}
	if c.IngestRate < 0 || math.IsNaN(c.IngestRate) || math.IsInf(c.IngestRate, 0) {
		errs = append(errs, envflag.Errorf("ingest-rate", "must be a finite number ≥ 0"))
	}
	return errors.Join(errs...)
}

// Flags are the ingest service's command-line settings shared by every
// edge (`iotplatform serve --ingest-max-batch/--ingest-sensor-cache-ttl/
// --ingest-stream-inflight`, each with its IOT_* variable).
type Flags struct {
	MaxBatch       int
	SensorCacheTTL time.Duration
	StreamInFlight int
}

// RegisterFlags binds the ingest service flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.MaxBatch, "ingest-max-batch", "IOT_INGEST_MAX_BATCH", 10000, "most readings in one batch")
	envflag.Duration(fs, &c.SensorCacheTTL, "ingest-sensor-cache-ttl", "IOT_INGEST_SENSOR_CACHE_TTL", cache.TTL, "how long a sensor lookup is reused by the ingest path and the pipeline (registry.SensorCache): the bound on noticing a sensor created, deleted or retyped in another process")
	envflag.Int(fs, &c.StreamInFlight, "ingest-stream-inflight", "IOT_INGEST_STREAM_INFLIGHT", 8, "batches an IngestStream reads ahead of its acks")
}

// Validate checks the ingest service flags.
func (c *Flags) Validate() error {
	var errs []error
	for name, v := range map[string]int{"ingest-max-batch": c.MaxBatch, "ingest-stream-inflight": c.StreamInFlight} {
		if v <= 0 {
			errs = append(errs, envflag.Errorf(name, "must be positive"))
		}
	}
	if c.SensorCacheTTL < 0 {
		errs = append(errs, envflag.Errorf("ingest-sensor-cache-ttl", "must not be negative"))
	}
	return errors.Join(errs...)
}
