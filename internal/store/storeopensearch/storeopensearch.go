// Package storeopensearch is the scaled time-series store: OpenSearch via
// opensearch-go v4, bulk indexing with deterministic document ids
// (`<sensor_id>_<timestamp_ns>`, `_<seq>` appended when seq is not 0), an index template the platform installs
// itself (date_nanos timestamps, one typed field per value type, objects as
// flat_object), and an optional per-sensor index mode named like the
// original platform, behind the deployment's prefix (`<prefix>-<device_id>_<sensor_id>`,
// so deployments sharing a cluster never meet).
package storeopensearch

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/opensearch-project/opensearch-go/v4"

	"github.com/iotplatform/iotplatform/internal/store"
)

// Index modes.
const (
	ModeShared    = "shared"
	ModePerSensor = "per-sensor"
)

// Config selects the cluster and the index layout.
type Config struct {
	// URLs of the cluster nodes.
	URLs []string
	// Prefix names the shared indices (<prefix>-readings,
	// <prefix>-deadletters) and the template (default "iot").
	Prefix string
	// Mode is ModeShared (default) or ModePerSensor.
	Mode string
	// Replicas per shard (0 on a single node).
	Replicas int
	// Shards of each readings index (default 1).
	Shards int
	// Username and Password, when Username is set, are sent as HTTP basic
	// auth on every request. The password is never logged.
	Username, Password string
	// CAFile is a PEM bundle verifying the nodes' HTTPS certificates, for a
	// cluster with a private CA; empty uses the system roots.
	CAFile string
	// Settle is how long after it was written retention summarises a
	// reading (0: DefaultSettle). It must exceed what a bulk request can
	// take plus the clock difference between the hosts of the pipeline and
	// of the retention runner: a reading written less than Settle ago is
	// left to a later retention step (Aggregate counts it meanwhile).
	Settle time.Duration
}

// DefaultSettle is Config.Settle's default.
const DefaultSettle = 5 * time.Minute

// Store implements store.Store on OpenSearch.
type Store struct {
	log  *slog.Logger
	cfg  Config
	c    *opensearch.Client
	feed *store.Feed

	mu      sync.Mutex
	indices map[string]bool // per-sensor indices known to exist
	// expireCursor is the sensor the last Expire call finished.
	expireCursor int64
	// legacy: the shared-mode deployment still has the single
	// <prefix>-readings index of the layout before day indices (read and
	// range-deleted by retention like before).
	legacy bool
	// dayKeeper is, per day index retention could not drop yet, a sensor
	// whose raw horizon was before the end of that day (checked first).
	dayKeeper map[string]int64
}

// Open connects, installs the index template and creates the shared indices.
func Open(ctx context.Context, log *slog.Logger, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "iot"
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeShared
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 1
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	if cfg.Mode != ModeShared && cfg.Mode != ModePerSensor {
		return nil, fmt.Errorf("opensearch index mode %q: want %s or %s", cfg.Mode, ModeShared, ModePerSensor)
	}
	// The client retries 502/503/504 and connection errors. Spaced out
	// (50, 100, 200, 400 ms): a 503 is often a moment, not an outage — a
	// search reaching a day index the pipeline has just created, whose
	// shard has not started yet ("all shards failed"), answers 503 for a few
	// hundred ms, and back-to-back retries all landed inside it.
	oc := opensearch.Config{Addresses: cfg.URLs, MaxRetries: 4, RetryBackoff: retryBackoff, HealthCheckMaxRetries: -1,
		Username: cfg.Username, Password: cfg.Password}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("opensearch CA file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("opensearch CA file %s: no PEM certificate in it", cfg.CAFile)
		}
		oc.CACert = pem
	}
	c, err := opensearch.NewClient(oc)
	if err != nil {
		return nil, fmt.Errorf("opensearch client: %w", err)
	}
	s := &Store{log: log, cfg: cfg, c: c, feed: store.NewFeed(), indices: map[string]bool{}, dayKeeper: map[string]int64{}}
	if err := s.install(ctx); err != nil {
		return nil, err
	}
	if cfg.Mode == ModeShared {
		status, err := s.do(ctx, http.MethodHead, "/"+s.readingsIndex(), nil, nil)
		if err != nil && status != http.StatusNotFound {
			return nil, fmt.Errorf("look for the legacy readings index: %w", err)
		}
		s.legacy = status == http.StatusOK
	}
	return s, nil
}

// readingsIndex is the single shared readings index of the layout before
// day indices (still read and expired when a deployment has it).
func (s *Store) readingsIndex() string { return s.cfg.Prefix + "-readings" }

// readingsPattern addresses every shared-mode readings index: the day
// indices and the legacy one.
func (s *Store) readingsPattern() string { return s.cfg.Prefix + "-readings*" }

// dayLayout is the date part of a day index name.
const dayLayout = "20060102"

// dayIndex is the shared-mode index of a reading at tsNS: one per UTC day.
func (s *Store) dayIndex(tsNS int64) string {
	return s.cfg.Prefix + "-readings-" + time.Unix(0, tsNS).UTC().Format(dayLayout)
}

func (s *Store) deadLettersIndex() string { return s.cfg.Prefix + "-deadletters" }

// sensorIndex is the index holding ref's readings.
func (s *Store) sensorIndex(ref store.SensorRef) string {
	if s.cfg.Mode == ModePerSensor {
		return fmt.Sprintf("%s-%d_%d", s.cfg.Prefix, ref.DeviceID, ref.SensorID)
	}
	return s.readingsPattern()
}

// searchIndex is the index expression for reading one sensor.
func (s *Store) searchIndex(sensorID int64) string {
	if s.cfg.Mode == ModePerSensor {
		return fmt.Sprintf("%s-*_%d", s.cfg.Prefix, sensorID)
	}
	return s.readingsPattern()
}

func (s *Store) allReadings() string {
	if s.cfg.Mode == ModePerSensor {
		return s.cfg.Prefix + "-*_*"
	}
	return s.readingsPattern()
}

// Feed returns the live feed of readings written by this process.
func (s *Store) Feed() *store.Feed { return s.feed }

// Ping checks the cluster answers.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.do(ctx, http.MethodGet, "/_cluster/health", nil, nil)
	return err
}

// Close releases the client.
func (s *Store) Close() error { return nil }

// Refresh makes every write searchable now (tests; production relies on
// the 1 s refresh interval).
func (s *Store) Refresh(ctx context.Context) error {
	_, err := s.do(ctx, http.MethodPost, "/"+s.allReadings()+","+s.deadLettersIndex()+"/_refresh?allow_no_indices=true&ignore_unavailable=true", nil, nil)
	return err
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Searcher = (*Store)(nil)
)

// retryBackoff is the wait before retry number attempt (1, 2, …) of a
// request: 50 ms, doubling.
func retryBackoff(attempt int) time.Duration { return 50 * time.Millisecond << (attempt - 1) }
