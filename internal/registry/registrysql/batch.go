package registrysql

import (
	"context"
	"strings"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// batchSize bounds the ids of one IN list (well under SQLite's and
// PostgreSQL's limits on bound parameters).
const batchSize = 500

var (
	_ registry.DeviceAccessReader = (*DB)(nil)
	_ registry.SensorsReader      = (*DB)(nil)
	_ registry.ChangeCounter      = (*DB)(nil)
)

// Changes implements registry.ChangeCounter: the counter the triggers of
// migration 033 (registry_changes) bump, read past the read cache.
func (r *DB) Changes(ctx context.Context) (int64, error) {
	var n int64
	err := r.row(ctx, `SELECT n FROM registry_changes WHERE k = 1`).Scan(&n)
	return n, r.wrap("read registry changes", err)
}

// deviceAccessCols are the device columns DeviceAccess reads.
const deviceAccessCols = `id, key_gen, ingest_rate, ingest_burst`

// DeviceAccess implements registry.DeviceAccessReader, past the read cache
// (its callers refresh their own caches with it). The columns it reads are
// the ones whose change bumps registry.ChangeCounter (migration 033's
// devices_update_changes; TestMigrations_ChangeTriggersCoverBatchReads).
func (r *DB) DeviceAccess(ctx context.Context, ids []int64) (map[int64]registry.DeviceAccess, error) {
	out := make(map[int64]registry.DeviceAccess, len(ids))
	err := r.inBatches(ctx, `SELECT `+deviceAccessCols+` FROM devices WHERE id IN (`, ids, func(row rowScanner) error {
		var id int64
		var a registry.DeviceAccess
		if err := row.Scan(&id, &a.KeyGen, &a.IngestRate, &a.IngestBurst); err != nil {
			return err
		}
		out[id] = a
		return nil
	})
	return out, r.wrap("read device access", err)
}

// GetSensors implements registry.SensorsReader, past the read cache.
func (r *DB) GetSensors(ctx context.Context, ids []int64) (map[int64]registry.Sensor, error) {
	out := make(map[int64]registry.Sensor, len(ids))
	err := r.inBatches(ctx, `SELECT `+sensorCols+` FROM sensors WHERE id IN (`, ids, func(row rowScanner) error {
		s, err := scanSensor(row)
		if err != nil {
			return err
		}
		out[s.ID] = s
		return nil
	})
	return out, r.wrap("get sensors", err)
}

// inBatches runs prefix + "?, ?, …)" over ids, batchSize at a time, and
// calls scan for every row. The statements are not kept (their text varies
// with the last batch's length).
func (r *DB) inBatches(ctx context.Context, prefix string, ids []int64, scan func(rowScanner) error) error {
	for len(ids) > 0 {
		n := min(len(ids), batchSize)
		q := prefix + strings.TrimSuffix(strings.Repeat("?,", n), ",") + `)`
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := r.db.QueryContext(ctx, r.d.rebind(q), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := scan(rows); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}
