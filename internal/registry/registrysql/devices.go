package registrysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"maps"
	"strings"

	"github.com/iotplatform/iotplatform/internal/registry"
)

const deviceCols = `id, owner_id, name, description, labels, key_gen, ingest_rate, ingest_burst, created_at, updated_at`

func scanDevice(row interface{ Scan(...any) error }) (registry.Device, error) {
	var d registry.Device
	var labels string
	var c, m int64
	if err := row.Scan(&d.ID, &d.OwnerID, &d.Name, &d.Description, &labels, &d.KeyGen, &d.IngestRate, &d.IngestBurst, &c, &m); err != nil {
		return d, err
	}
	d.CreatedAt, d.UpdatedAt = fromMicros(c), fromMicros(m)
	if labels != "" && labels != "{}" {
		var err error
		if d.Labels, err = parseLabels(labels); err != nil {
			return d, err
		}
	}
	return d, nil
}

func labelsJSON(l map[string]string) string {
	if len(l) == 0 {
		return "{}"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

// CreateDevice implements registry.Registry.
func (r *DB) CreateDevice(ctx context.Context, d registry.Device) (registry.Device, error) {
	now := micros(r.now())
	out := newDevice(d, now)
	err := r.writeOne(ctx, func(w wtx) (err error) {
		out.ID, _, err = w.insert(`INSERT INTO devices (owner_id, name, description, labels, key_gen, ingest_rate, ingest_burst, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)`, d.OwnerID, d.Name, d.Description, labelsJSON(d.Labels), d.IngestRate, d.IngestBurst, now, now)
		return err
	})
	if err != nil {
		return registry.Device{}, r.wrap("create device", err)
	}
	// A sensor list read before the device existed may be cached empty.
	r.cache.Forget(cacheKey{keyDevice, out.ID, 0}, cacheKey{keySensors, out.ID, 0})
	return out, nil
}

// newDevice is the row an INSERT of d at now writes (without its id): what
// reading it back would return.
func newDevice(d registry.Device, now int64) registry.Device {
	t := fromMicros(now)
	out := registry.Device{OwnerID: d.OwnerID, Name: d.Name, Description: d.Description,
		IngestRate: d.IngestRate, IngestBurst: d.IngestBurst, CreatedAt: t, UpdatedAt: t}
	if len(d.Labels) > 0 {
		out.Labels = maps.Clone(d.Labels)
	}
	return out
}

// GetDevice implements registry.Registry.
func (r *DB) GetDevice(ctx context.Context, id int64) (registry.Device, error) {
	return get(r.cache, cacheKey{keyDevice, id, 0}, func() (registry.Device, error) {
		if r.raw != nil {
			d, err := r.raw.device(id)
			return d, r.wrap("get device", err)
		}
		d, err := scanDevice(r.row(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
		return d, r.wrap("get device", err)
	}, cloneDevice)
}

// cloneDevice copies what a Device shares (its labels).
func cloneDevice(d registry.Device) registry.Device {
	d.Labels = maps.Clone(d.Labels)
	return d
}

// ListDevices implements registry.Registry.
func (r *DB) ListDevices(ctx context.Context, f registry.DeviceFilter, p registry.Page) ([]registry.Device, error) {
	if r.raw != nil && f.NameContains == "" {
		// A page of at most p.Limit rows over an index range: bounded.
		out, err := r.raw.devices(f.OwnerID, p.AfterID, p.Limit)
		return out, r.wrap("list devices", err)
	}
	q := `SELECT ` + deviceCols + ` FROM devices WHERE id > ?`
	args := []any{p.AfterID}
	if f.OwnerID != 0 {
		q += ` AND owner_id = ?`
		args = append(args, f.OwnerID)
	}
	if f.NameContains != "" {
		q += ` AND LOWER(name) LIKE ? ESCAPE '\'`
		args = append(args, "%"+escapeLike(strings.ToLower(f.NameContains))+"%")
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, p.Limit)
	rows, err := r.rows(ctx, q, args...)
	if err != nil {
		return nil, r.wrap("list devices", err)
	}
	defer rows.Close()
	var out []registry.Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, r.wrap("list devices", err)
		}
		out = append(out, d)
	}
	return out, r.wrap("list devices", rows.Err())
}

func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// UpdateDevice implements registry.Registry.
func (r *DB) UpdateDevice(ctx context.Context, d registry.Device) (registry.Device, error) {
	now := micros(r.now())
	var out registry.Device
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanDevice(w.row(`UPDATE devices SET name = ?, description = ?, labels = ?, ingest_rate = ?, ingest_burst = ?, updated_at = ?
		WHERE id = ? RETURNING `+deviceCols, d.Name, d.Description, labelsJSON(d.Labels), d.IngestRate, d.IngestBurst, now, d.ID))
		return err
	})
	r.cache.Forget(cacheKey{keyDevice, d.ID, 0})
	return out, r.wrap("update device", err)
}

// DeleteDevice implements registry.Registry.
func (r *DB) DeleteDevice(ctx context.Context, id int64) ([]registry.Sensor, error) {
	defer r.cache.Forget()
	var sensors []registry.Sensor
	err := r.write(ctx, func(w wtx) error {
		var err error
		if sensors, err = r.listSensors(ctx, w.rows, id); err != nil {
			return err
		}
		res, err := w.exec(`DELETE FROM devices WHERE id = ?`, id)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	return sensors, r.wrap("delete device", err)
}

// RotateDeviceKey implements registry.Registry.
func (r *DB) RotateDeviceKey(ctx context.Context, id int64) (registry.Device, error) {
	now := micros(r.now())
	var d registry.Device
	err := r.write(ctx, func(w wtx) (err error) {
		d, err = scanDevice(w.row(`UPDATE devices SET key_gen = key_gen + 1, updated_at = ?
		WHERE id = ? RETURNING `+deviceCols, now, id))
		return err
	})
	r.cache.Forget(cacheKey{keyDevice, id, 0})
	return d, r.wrap("rotate device key", err)
}

func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return sql.ErrNoRows
	}
	return nil
}
