package storeembedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/iotplatform/iotplatform/internal/store"
)

// Retention deletes whole expired minutes of a sensor's raw readings, a few
// thousand rows per write, through the committer (so a device's write waits
// at most one small delete), and only minutes whose per-minute aggregate is
// up to date; the aggregates stay. Per-minute aggregates past their own
// retention are folded into per-hour aggregates first. The horizons table
// remembers up to where raw readings and minute aggregates were deleted, so
// Aggregate answers older ranges from the aggregates.

const retentionSchema = `
CREATE TABLE IF NOT EXISTS rollups_hour (
  sensor_id INTEGER NOT NULL,
  t         INTEGER NOT NULL,
  c INTEGER NOT NULL, nc INTEGER NOT NULL, sm REAL NOT NULL, mn REAL, mx REAL,
  fts INTEGER NOT NULL, fv REAL, lts INTEGER NOT NULL, lv REAL,
  PRIMARY KEY (sensor_id, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS horizons (
  sensor_id  INTEGER PRIMARY KEY,
  raw_before INTEGER NOT NULL DEFAULT 0,
  min_before INTEGER NOT NULL DEFAULT 0
);
`

const hourG = int64(60 * rollupG)

var _ store.Expirer = (*Store)(nil)

// job runs fn in its own write transaction on the committer.
type job struct {
	fn   func(ctx context.Context, tx *sql.Tx) error
	errc chan error
}

func (s *Store) runJob(ctx context.Context, fn func(ctx context.Context, tx *sql.Tx) error) error {
	j := &job{fn: fn, errc: make(chan error, 1)}
	select {
	case s.jobs <- j:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-j.errc:
		return err
	case <-s.done:
		return errClosed
	}
}

func (s *Store) doJob(j *job) {
	ctx := context.Background()
	err := func() error {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := j.fn(ctx, tx); err != nil {
			return err
		}
		return tx.Commit()
	}()
	s.wal.AfterCommit()
	j.errc <- err
}

// Expire implements store.Expirer: in one write transaction it visits
// sensors from where the last call stopped and deletes up to about limit
// rows (one fsync per step, not per sensor).
func (s *Store) Expire(ctx context.Context, p store.RetentionPolicy, limit int) (int, error) {
	if limit <= 0 {
		limit = 5000
	}
	total := 0
	err := s.runJob(ctx, func(ctx context.Context, tx *sql.Tx) error {
		for visited := 0; total < limit && visited < 256; visited++ {
			var sensor int64
			err := tx.QueryRowContext(ctx, "SELECT sensor_id FROM readings WHERE sensor_id > ? ORDER BY sensor_id LIMIT 1", s.expireCursor).Scan(&sensor)
			if errors.Is(err, sql.ErrNoRows) {
				s.expireCursor = 0
				return nil
			}
			if err != nil {
				return err
			}
			n, more, err := expireSensor(ctx, tx, p, sensor, limit-total)
			if err != nil {
				return fmt.Errorf("sensor %d: %w", sensor, err)
			}
			total += n
			if !more {
				s.expireCursor = sensor
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire readings: %w", err)
	}
	if p.MinuteBeforeNS > 0 && total < limit {
		n, err := s.expireMinutes(ctx, floorTo(p.MinuteBeforeNS, hourG), limit-total)
		if err != nil {
			return total, err
		}
		total += n
	}
	return total, nil
}

// expireSensor deletes up to limit raw rows of one sensor; more reports
// that expired rows remain.
func expireSensor(ctx context.Context, tx *sql.Tx, p store.RetentionPolicy, sensor int64, limit int) (int, bool, error) {
	cut := p.RawBefore(sensor)
	if cut <= 0 {
		return 0, false, nil
	}
	cut = floorTo(cut, rollupG) // whole minutes: their aggregates stay exact
	// Never past a minute whose aggregate is not computed yet.
	var dirty sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT MIN(t) FROM rollups_dirty WHERE sensor_id = ? AND t < ?", sensor, cut).Scan(&dirty); err != nil {
		return 0, false, err
	}
	if dirty.Valid {
		cut = dirty.Int64
	}
	bound, more := cut, false
	var ts int64
	err := tx.QueryRowContext(ctx, "SELECT ts FROM readings WHERE sensor_id = ? AND ts < ? ORDER BY ts LIMIT 1 OFFSET ?", sensor, cut, limit).Scan(&ts)
	switch {
	case err == nil:
		more = true
		bound = floorTo(ts, rollupG)
		if first := firstMinute(ctx, tx, sensor); bound <= first {
			bound = first + rollupG // one minute holds more than limit rows: take it whole
		}
	case !errors.Is(err, sql.ErrNoRows):
		return 0, false, err
	}
	res, err := tx.ExecContext(ctx, "DELETE FROM readings WHERE sensor_id = ? AND ts < ?", sensor, bound)
	if err != nil {
		return 0, false, err
	}
	n, _ := res.RowsAffected()
	if n > 0 {
		_, err = tx.ExecContext(ctx, `INSERT INTO horizons (sensor_id, raw_before) VALUES (?, ?)
			ON CONFLICT (sensor_id) DO UPDATE SET raw_before = MAX(raw_before, excluded.raw_before)`, sensor, bound)
	}
	return int(n), more, err
}

func firstMinute(ctx context.Context, tx *sql.Tx, sensor int64) int64 {
	var ts int64
	_ = tx.QueryRowContext(ctx, "SELECT ts FROM readings WHERE sensor_id = ? ORDER BY ts LIMIT 1", sensor).Scan(&ts)
	return floorTo(ts, rollupG)
}

// expireMinutes folds per-minute aggregates before `before` whose raw
// readings are gone into per-hour aggregates and deletes them, up to limit
// minutes.
func (s *Store) expireMinutes(ctx context.Context, before int64, limit int) (int, error) {
	var deleted int
	err := s.runJob(ctx, func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT sensor_id, t, c, nc, sm, mn, mx, fts, fv, lts, lv FROM rollups
			WHERE t < ? AND NOT EXISTS (SELECT 1 FROM rollups_dirty d WHERE d.sensor_id = rollups.sensor_id AND d.t = rollups.t)
			AND t + ? <= COALESCE((SELECT raw_before FROM horizons h WHERE h.sensor_id = rollups.sensor_id), 0)
			ORDER BY sensor_id, t LIMIT ?`, before, rollupG, limit)
		if err != nil {
			return err
		}
		type key struct{ sensor, hour int64 }
		hours := map[key]*partial{}
		var order []key
		var mins []slot
		for rows.Next() {
			var sensor, t int64
			var p partial
			var mn, mx, fv, lv sql.NullFloat64
			if err := rows.Scan(&sensor, &t, &p.Count, &p.NumCount, &p.Sum, &mn, &mx, &p.FirstTS, &fv, &p.LastTS, &lv); err != nil {
				rows.Close()
				return err
			}
			p.Min, p.Max = mn.Float64, mx.Float64
			p.First, p.FirstNum, p.Last, p.LastNum = fv.Float64, fv.Valid, lv.Float64, lv.Valid
			k := key{sensor, floorTo(t, hourG)}
			if hours[k] == nil {
				hours[k] = &partial{}
				order = append(order, k)
			}
			hours[k].Merge(p)
			mins = append(mins, slot{sensor, t})
		}
		rows.Close()
		for _, k := range order {
			// Merge with what an earlier pass already folded of this hour.
			var old partial
			var mn, mx, fv, lv sql.NullFloat64
			err := tx.QueryRowContext(ctx, "SELECT c, nc, sm, mn, mx, fts, fv, lts, lv FROM rollups_hour WHERE sensor_id = ? AND t = ?", k.sensor, k.hour).
				Scan(&old.Count, &old.NumCount, &old.Sum, &mn, &mx, &old.FirstTS, &fv, &old.LastTS, &lv)
			if err == nil {
				old.Min, old.Max, old.First, old.FirstNum, old.Last, old.LastNum = mn.Float64, mx.Float64, fv.Float64, fv.Valid, lv.Float64, lv.Valid
				old.Merge(*hours[k])
				hours[k] = &old
			} else if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			p := hours[k]
			if _, err := tx.ExecContext(ctx, "INSERT OR REPLACE INTO rollups_hour (sensor_id, t, c, nc, sm, mn, mx, fts, fv, lts, lv) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
				k.sensor, k.hour, p.Count, p.NumCount, p.Sum, nullF(p.NumCount > 0, p.Min), nullF(p.NumCount > 0, p.Max), p.FirstTS, nullF(p.FirstNum, p.First), p.LastTS, nullF(p.LastNum, p.Last)); err != nil {
				return err
			}
		}
		for _, m := range mins {
			if _, err := tx.ExecContext(ctx, "DELETE FROM rollups WHERE sensor_id = ? AND t = ?", m.sensor, m.t); err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO horizons (sensor_id, min_before) VALUES (?, ?)
				ON CONFLICT (sensor_id) DO UPDATE SET min_before = MAX(min_before, excluded.min_before)`, m.sensor, m.t+rollupG); err != nil {
				return err
			}
		}
		deleted = len(mins)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("fold minute aggregates: %w", err)
	}
	return deleted, nil
}

// horizon returns up to where a sensor's raw readings and minute
// aggregates were deleted (0, 0: nothing was).
func horizon(ctx context.Context, tx *sql.Tx, sensor int64) (raw, minute int64, err error) {
	err = tx.QueryRowContext(ctx, "SELECT raw_before, min_before FROM horizons WHERE sensor_id = ?", sensor).Scan(&raw, &minute)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	return raw, minute, err
}

// aggregateExpired adds the aggregates of [from, to) — a range whose raw
// readings were deleted — bucketed by the start of each minute or hour.
func aggregateExpired(ctx context.Context, tx *sql.Tx, sensor, from, to, minuteBefore int64, add func(int64, partial)) error {
	for _, src := range []struct {
		table    string
		g        int64
		from, to int64
	}{{"rollups_hour", hourG, from, min(to, minuteBefore)}, {"rollups", rollupG, max(from, minuteBefore), to}} {
		if src.from >= src.to {
			continue
		}
		rows, err := tx.QueryContext(ctx, "SELECT t, c, nc, sm, mn, mx, fts, fv, lts, lv FROM "+src.table+" WHERE sensor_id = ? AND t >= ? AND t < ?",
			sensor, floorTo(src.from, src.g), src.to)
		if err != nil {
			return err
		}
		for rows.Next() {
			var t int64
			var p partial
			var mn, mx, fv, lv sql.NullFloat64
			if err := rows.Scan(&t, &p.Count, &p.NumCount, &p.Sum, &mn, &mx, &p.FirstTS, &fv, &p.LastTS, &lv); err != nil {
				rows.Close()
				return err
			}
			p.Min, p.Max = mn.Float64, mx.Float64
			p.First, p.FirstNum, p.Last, p.LastNum = fv.Float64, fv.Valid, lv.Float64, lv.Valid
			add(max(t, from), p)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
