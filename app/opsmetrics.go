package app

import (
	"context"
	"crypto/x509"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/tlsconfig"
)

// Metrics an operator alerts on that no single module owns: readiness,
// the data volume, bus lag and certificate expiry (docs/OPERATIONS.md).

// readinessInterval is how often the readiness checks are evaluated for
// iot_ready / iot_readiness_check_ok (besides every /readyz request).
const readinessInterval = 15 * time.Second

// opsGauges are the process-wide operations gauges.
type opsGauges struct {
	ready  prometheus.Gauge
	checks *prometheus.GaugeVec
}

// registerOpsMetrics registers readiness and data-volume metrics and the
// runner that refreshes readiness.
func (a *App) registerOpsMetrics() {
	g := &opsGauges{
		ready: prometheus.NewGauge(prometheus.GaugeOpts{Name: "iot_ready",
			Help: "1 when every readiness check passes (what /readyz answers 200 for), else 0; refreshed every 15 s."}),
		checks: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iot_readiness_check_ok",
			Help: "1 when the named readiness check passes, else 0 (checks: disk, registry, store, bus, kafka, ...)."}, []string{"check"}),
	}
	dir := a.cfg.DataDir
	a.metrics.MustRegister(g.ready, g.checks,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iot_data_dir_free_bytes",
			Help: "Bytes available to the process on the data dir's volume."}, func() float64 { free, _ := volume(dir); return free }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iot_data_dir_size_bytes",
			Help: "Size of the data dir's volume in bytes."}, func() float64 { _, size := volume(dir); return size }),
	)
	a.ops = g
	a.addRunner("readiness-metrics", func(ctx context.Context) error {
		t := time.NewTicker(readinessInterval)
		defer t.Stop()
		for {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			a.checkReadiness(cctx)
			cancel()
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
}

// checkReadiness runs every readiness check and records the results; it
// returns the failures by check name.
func (a *App) checkReadiness(ctx context.Context) map[string]error {
	failed := map[string]error{}
	for name, check := range a.readyChecks {
		err := check(ctx)
		if err != nil {
			failed[name] = err
		}
		if a.ops != nil {
			a.ops.checks.WithLabelValues(name).Set(boolGauge(err == nil))
		}
	}
	if a.ops != nil {
		a.ops.ready.Set(boolGauge(len(failed) == 0))
	}
	return failed
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// volume returns the free (to unprivileged users) and total bytes of the
// volume holding dir (0, 0 when it cannot be read).
func volume(dir string) (free, size float64) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, 0
	}
	return float64(st.Bavail) * float64(st.Bsize), float64(st.Blocks) * float64(st.Bsize)
}

// registerBusLag exports how far the pipeline is behind the bus:
// iot_bus_lag_records{bus="wal"} (records acknowledged, not yet applied)
// or {bus="kafka"} (the consumer group's lag on this member's partitions).
func (a *App) registerBusLag() {
	var fn func() float64
	var kind string
	switch {
	case a.bus.wal != nil:
		kind, fn = "wal", func() float64 { _, _, backlog := a.bus.wal.Stats(); return float64(backlog) }
	default:
		l, ok := a.bus.sub.(interface{ Lag() (int64, bool) })
		if !ok {
			return // the direct hand-off has no backlog
		}
		kind, fn = "kafka", func() float64 { n, _ := l.Lag(); return float64(max(n, 0)) }
	}
	a.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iot_bus_lag_records",
		Help:        "Readings on the bus not yet applied to the store by this process's pipeline (wal: acknowledged, not applied; kafka: the consumer lag of this member's partitions).",
		ConstLabels: prometheus.Labels{"bus": kind}}, fn))
}

// registerCertExpiry exports when the certificate a TLS listener serves
// expires (reloads included).
func (a *App) registerCertExpiry(listener string, c *tlsconfig.Certificate) {
	a.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "iot_tls_certificate_expiry_timestamp_seconds",
		Help: "When the certificate served by a TLS listener expires, in seconds since the epoch.", ConstLabels: prometheus.Labels{"listener": listener}},
		func() float64 {
			tc := c.Get()
			if tc == nil || len(tc.Certificate) == 0 {
				return 0
			}
			leaf := tc.Leaf
			if leaf == nil {
				var err error
				if leaf, err = x509.ParseCertificate(tc.Certificate[0]); err != nil {
					return 0
				}
			}
			return float64(leaf.NotAfter.Unix())
		}))
}
