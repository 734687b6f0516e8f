package rules

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
)

// RetentionConfig tunes the retention runner.
type RetentionConfig struct {
	// Raw is the default raw retention (0: forever); sensors may override it.
	Raw time.Duration
	// Minute is how long per-minute aggregates are kept (0: forever).
	Minute time.Duration
	// Interval between passes (default 1m).
	Interval time.Duration
	// Batch is the most rows one delete step removes (default 2000), and
	// Pause the wait between steps (default 20ms), so ingest keeps the
	// store's writer most of the time.
	Batch int
	Pause time.Duration
}

// Retainer deletes expired readings in the background.
type Retainer struct {
	log     *slog.Logger
	rules   registry.Rules
	st      store.Expirer
	cfg     RetentionConfig
	now     func() time.Time
	deleted prometheus.Counter
}

// NewRetainer returns a retention runner over st.
func NewRetainer(log *slog.Logger, rs registry.Rules, st store.Expirer, cfg RetentionConfig, reg prometheus.Registerer) *Retainer {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 2000
	}
	if cfg.Pause <= 0 {
		cfg.Pause = 20 * time.Millisecond
	}
	r := &Retainer{log: log, rules: rs, st: st, cfg: cfg, now: time.Now,
		deleted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iot_retention_deleted_total", Help: "Expired raw readings and minute aggregates deleted by retention.",
		})}
	if reg != nil {
		reg.MustRegister(r.deleted)
	}
	return r
}

// Run makes a pass every Interval until ctx is done.
func (r *Retainer) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if n, err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("retention pass failed", "deleted", n, "err", err)
		} else if n > 0 {
			r.log.Info("retention pass", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Pass deletes what is expired now, step by step; it returns the rows deleted.
func (r *Retainer) Pass(ctx context.Context) (int, error) {
	over, err := r.rules.SensorRetentions(ctx)
	if err != nil {
		return 0, err
	}
	if r.cfg.Raw == 0 && r.cfg.Minute == 0 && len(over) == 0 {
		return 0, nil
	}
	now := r.now()
	p := store.RetentionPolicy{RawBefore: func(sensor int64) int64 {
		d := time.Duration(over[sensor])
		if d == 0 {
			d = r.cfg.Raw
		}
		if d <= 0 {
			return 0
		}
		return now.Add(-d).UnixNano()
	}}
	if r.cfg.Minute > 0 {
		p.MinuteBeforeNS = now.Add(-r.cfg.Minute).UnixNano()
	}
	total := 0
	for {
		n, err := r.st.Expire(ctx, p, r.cfg.Batch)
		total += n
		r.deleted.Add(float64(n))
		if err != nil || n == 0 {
			return total, err
		}
		select {
		case <-ctx.Done():
			return total, nil
		case <-time.After(r.cfg.Pause):
		}
	}
}
