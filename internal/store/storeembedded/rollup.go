package storeembedded

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

// Rollups make Aggregate independent of the number of raw readings. A commit
// only marks the minutes it touched as dirty (one small row per sensor and
// minute); the committer recomputes dirty minutes from the raw rows when it
// is idle (recomputing rather than adding keeps replays and overwrites
// correct). Aggregate reads the summaries of clean minutes and raw rows for
// dirty minutes, unaligned queries and the tail before `to`, inside one read
// transaction, so answers are always exact.

const rollupSchema = `
CREATE TABLE IF NOT EXISTS rollups (
  sensor_id INTEGER NOT NULL,
  t         INTEGER NOT NULL, -- start of the minute in ns
  c INTEGER NOT NULL, nc INTEGER NOT NULL, sm REAL NOT NULL, mn REAL, mx REAL,
  fts INTEGER NOT NULL, fv REAL, lts INTEGER NOT NULL, lv REAL,
  PRIMARY KEY (sensor_id, t)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollups_dirty (
  sensor_id INTEGER NOT NULL,
  t         INTEGER NOT NULL,
  PRIMARY KEY (sensor_id, t)
) WITHOUT ROWID;
`

const rollupG = int64(time.Minute)

// partial is the store contract's mergeable summary of readings.
type partial = store.Summary

func nullF(ok bool, v float64) any {
	if !ok {
		return nil
	}
	return v
}

// numOf returns the numeric value of a raw row (kind <= bool).
func numOf(kind int64, raw any) (float64, bool) {
	if kind > int64(store.KindBool) {
		return 0, false
	}
	switch x := raw.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}

type querier interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}

// scanRaw calls fn for the raw rows of [from, to) in ts order.
func scanRaw(ctx context.Context, q querier, sensorID, from, to int64, fn func(ts int64, num float64, isNum bool)) error {
	rows, err := q.QueryContext(ctx, "SELECT ts, kind, v FROM readings WHERE sensor_id = ? AND ts >= ? AND ts < ? ORDER BY ts, seq", sensorID, from, to)
	if err != nil {
		return fmt.Errorf("scan readings: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var ts, kind int64
		var raw any
		if err := rows.Scan(&ts, &kind, &raw); err != nil {
			return fmt.Errorf("scan reading: %w", err)
		}
		n, ok := numOf(kind, raw)
		fn(ts, n, ok)
	}
	return rows.Err()
}

type slot struct{ sensor, t int64 }

// compact recomputes up to limit dirty minutes from the raw rows, in one
// transaction on the raw writer; it reports how many it did.
func (s *Store) compact(limit int) (int, error) { return s.compactBefore(limit, math.MaxInt64) }

// compactBefore is compact for the dirty minutes starting before before.
func (s *Store) compactBefore(limit int, before int64) (int, error) {
	w := s.raw
	n := 0
	err := w.tx(func() error {
		dirty, err := w.dirtyMinutes(limit, before)
		if err != nil {
			return err
		}
		n = len(dirty)
		for i := 0; i < len(dirty); {
			// One scan per run of adjacent minutes of a sensor.
			j := i + 1
			for j < len(dirty) && dirty[j].sensor == dirty[i].sensor && dirty[j].t-dirty[j-1].t <= 5*rollupG {
				j++
			}
			run := dirty[i:j]
			parts := make(map[int64]*partial, len(run))
			for _, d := range run {
				parts[d.t] = &partial{}
			}
			err := w.scanRaw(run[0].sensor, run[0].t, run[len(run)-1].t+rollupG, func(ts int64, num float64, isNum bool) {
				if p := parts[floorTo(ts, rollupG)]; p != nil {
					p.AddRaw(ts, num, isNum)
				}
			})
			if err != nil {
				return err
			}
			for _, d := range run {
				if err := w.putRollup(d, parts[d.t]); err != nil {
					return err
				}
			}
			i = j
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("compact rollups: %w", err)
	}
	return n, nil
}

func floorTo(t, g int64) int64 {
	r := t % g
	if r < 0 {
		r += g
	}
	return t - r
}

// Aggregate reads minute summaries when from and interval are whole
// minutes, raw readings otherwise (and for dirty minutes and the tail).
func (s *Store) Aggregate(ctx context.Context, q store.AggregateQuery) ([]store.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("aggregate readings: %w", err)
	}
	defer tx.Rollback()
	iv := int64(q.Interval)
	acc := map[int64]*partial{}
	add := func(t int64, p partial) {
		idx := (t - q.FromNS) / iv
		a := acc[idx]
		if a == nil {
			a = &partial{}
			acc[idx] = a
		}
		a.Merge(p)
	}
	addRaw := func(ts int64, num float64, isNum bool) {
		var p partial
		p.AddRaw(ts, num, isNum)
		add(ts, p)
	}
	// Before the sensor's raw horizon (retention deleted the raw readings)
	// the per-minute and per-hour aggregates answer.
	rawFrom := q.FromNS
	rawHorizon, minuteHorizon, err := horizon(ctx, tx, q.SensorID)
	if err != nil {
		return nil, fmt.Errorf("aggregate readings: %w", err)
	}
	if rawHorizon > rawFrom {
		if err := aggregateExpired(ctx, tx, q.SensorID, rawFrom, min(rawHorizon, q.ToNS), minuteHorizon, add); err != nil {
			return nil, fmt.Errorf("aggregate readings: %w", err)
		}
		rawFrom = min(rawHorizon, q.ToNS)
	}
	if end := floorTo(q.ToNS, rollupG); q.FromNS%rollupG == 0 && iv%rollupG == 0 && end > rawFrom {
		if err := s.aggregateRollups(ctx, tx, q.SensorID, rawFrom, end, add, addRaw); err != nil {
			return nil, fmt.Errorf("aggregate readings: %w", err)
		}
		rawFrom = end
	}
	if rawFrom < q.ToNS {
		if err := scanRaw(ctx, tx, q.SensorID, rawFrom, q.ToNS, addRaw); err != nil {
			return nil, fmt.Errorf("aggregate readings: %w", err)
		}
	}
	idxs := make([]int64, 0, len(acc))
	for i := range acc {
		idxs = append(idxs, i)
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	out := make([]store.Bucket, len(idxs))
	for i, idx := range idxs {
		out[i] = acc[idx].Bucket(q.FromNS + idx*iv)
	}
	return out, nil
}

func (s *Store) aggregateRollups(ctx context.Context, tx *sql.Tx, sensor, from, to int64, add func(int64, partial), addRaw func(int64, float64, bool)) error {
	rows, err := tx.QueryContext(ctx, "SELECT t FROM rollups_dirty WHERE sensor_id = ? AND t >= ? AND t < ?", sensor, from, to)
	if err != nil {
		return fmt.Errorf("read dirty rollups: %w", err)
	}
	dirty := map[int64]bool{}
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		dirty[t] = true
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, "SELECT t, c, nc, sm, mn, mx, fts, fv, lts, lv FROM rollups WHERE sensor_id = ? AND t >= ? AND t < ?", sensor, from, to)
	if err != nil {
		return fmt.Errorf("read rollups: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t int64
		var p partial
		var mn, mx, fv, lv sql.NullFloat64
		if err := rows.Scan(&t, &p.Count, &p.NumCount, &p.Sum, &mn, &mx, &p.FirstTS, &fv, &p.LastTS, &lv); err != nil {
			return fmt.Errorf("scan rollup: %w", err)
		}
		if dirty[t] {
			continue
		}
		p.Min, p.Max = mn.Float64, mx.Float64
		p.First, p.FirstNum, p.Last, p.LastNum = fv.Float64, fv.Valid, lv.Float64, lv.Valid
		add(t, p)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for t := range dirty {
		if err := scanRaw(ctx, tx, sensor, t, t+rollupG, addRaw); err != nil {
			return err
		}
	}
	return nil
}
