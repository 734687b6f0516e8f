package registrysql

import (
	"cmp"
	"context"
	"slices"
	"sort"

	"github.com/iotplatform/iotplatform/internal/registry"
)

const sensorCols = `id, device_id, name, description, unit, value_type, path, created_at, updated_at`

func scanSensor(row interface{ Scan(...any) error }) (registry.Sensor, error) {
	var s registry.Sensor
	var typ string
	var c, m int64
	err := row.Scan(&s.ID, &s.DeviceID, &s.Name, &s.Description, &s.Unit, &typ, &s.Path, &c, &m)
	s.Type, s.CreatedAt, s.UpdatedAt = registry.ValueType(typ), fromMicros(c), fromMicros(m)
	return s, err
}

// CreateSensor implements registry.Registry.
func (r *DB) CreateSensor(ctx context.Context, s registry.Sensor) (registry.Sensor, error) {
	now := micros(r.now())
	out := newSensor(s, s.DeviceID, now)
	err := r.writeOne(ctx, func(w wtx) (err error) {
		out.ID, _, err = w.insert(`INSERT INTO sensors (device_id, name, description, unit, value_type, path, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, s.DeviceID, s.Name, s.Description, s.Unit, string(s.Type), s.Path, now, now)
		return err
	})
	if err != nil {
		out = registry.Sensor{}
	}
	r.cache.Forget(cacheKey{keySensors, s.DeviceID, 0}, cacheKey{keySensor, out.ID, 0})
	if err != nil && !r.d.isUnique(err) {
		// A missing device violates the foreign key.
		if _, gerr := r.GetDevice(ctx, s.DeviceID); gerr != nil {
			return out, gerr
		}
	}
	return out, r.wrap("create sensor", err)
}

// newSensor is the row an INSERT of s for device at now writes (without its
// id).
func newSensor(s registry.Sensor, device, now int64) registry.Sensor {
	t := fromMicros(now)
	return registry.Sensor{DeviceID: device, Name: s.Name, Description: s.Description, Unit: s.Unit, Type: s.Type, Path: s.Path,
		CreatedAt: t, UpdatedAt: t}
}

// GetSensor implements registry.Registry.
func (r *DB) GetSensor(ctx context.Context, id int64) (registry.Sensor, error) {
	return get(r.cache, cacheKey{keySensor, id, 0}, func() (registry.Sensor, error) {
		if r.raw != nil {
			s, err := r.raw.sensor(id)
			return s, r.wrap("get sensor", err)
		}
		s, err := scanSensor(r.row(ctx, `SELECT `+sensorCols+` FROM sensors WHERE id = ?`, id))
		return s, r.wrap("get sensor", err)
	}, same)
}

// ListSensors implements registry.Registry.
func (r *DB) ListSensors(ctx context.Context, deviceID int64) ([]registry.Sensor, error) {
	return get(r.cache, cacheKey{keySensors, deviceID, 0}, func() ([]registry.Sensor, error) {
		if r.raw != nil {
			out, err := r.raw.sensorsOf(deviceID)
			return out, r.wrap("list sensors", err)
		}
		out, err := r.listSensors(r.pointCtx(ctx), r.rows, deviceID)
		return out, r.wrap("list sensors", err)
	}, slices.Clone)
}

var _ registry.DeviceSensorsReader = (*DB)(nil)

// DeviceWithSensors implements registry.DeviceSensorsReader: the read cache
// first (each key as GetDevice and ListSensors cache it); when both miss on
// SQLite, one raw read of both. The loads nest so that each value is cached
// only if no write ran since before it was read (cache.Load's rule).
func (r *DB) DeviceWithSensors(ctx context.Context, id int64) (registry.Device, []registry.Sensor, error) {
	if r.raw == nil {
		d, err := r.GetDevice(ctx, id)
		if err != nil {
			return d, nil, err
		}
		ss, err := r.ListSensors(ctx, id)
		return d, ss, err
	}
	var ss []registry.Sensor
	d, err := get(r.cache, cacheKey{keyDevice, id, 0}, func() (registry.Device, error) {
		var d registry.Device
		read := false
		out, err := get(r.cache, cacheKey{keySensors, id, 0}, func() ([]registry.Sensor, error) {
			read = true
			var s []registry.Sensor
			var err error
			d, s, err = r.raw.deviceSensors(id)
			return s, r.wrap("get device", err)
		}, slices.Clone)
		if err != nil {
			return d, err
		}
		ss = out
		if !read { // the sensors were cached, the device was not
			d, err = r.raw.device(id)
		}
		return d, r.wrap("get device", err)
	}, cloneDevice)
	if err != nil {
		return registry.Device{}, nil, err
	}
	if ss == nil { // the device was cached
		if ss, err = r.ListSensors(ctx, id); err != nil {
			return registry.Device{}, nil, err
		}
	}
	return d, ss, nil
}

// listSensors runs through query: r.rows, or a write transaction's (wtx.rows).
// The rows come in the order of the (device_id, path, name) index and are
// sorted by id here: an ORDER BY id makes SQLite open its sorter (a
// temporary B-tree) on every call, which costs more than sorting a device's
// few sensors in Go (BenchmarkGrowth ListSensors).
func (r *DB) listSensors(ctx context.Context, query queryFunc, deviceID int64) ([]registry.Sensor, error) {
	rows, err := query(ctx, `SELECT `+sensorCols+` FROM sensors WHERE device_id = ?`, deviceID)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []registry.Sensor{}
	for rows.Next() {
		s, err := scanSensor(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b registry.Sensor) int { return cmp.Compare(a.ID, b.ID) })
	return out, rows.Err()
}

// UpdateSensor implements registry.Registry.
func (r *DB) UpdateSensor(ctx context.Context, s registry.Sensor) (registry.Sensor, error) {
	now := micros(r.now())
	var out registry.Sensor
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanSensor(w.row(`UPDATE sensors SET name = ?, description = ?, unit = ?, path = ?, updated_at = ?
		WHERE id = ? RETURNING `+sensorCols, s.Name, s.Description, s.Unit, s.Path, now, s.ID))
		return err
	})
	r.cache.Forget(cacheKey{keySensor, s.ID, 0}, cacheKey{keySensors, out.DeviceID, 0}, cacheKey{keySensors, s.DeviceID, 0})
	return out, r.wrap("update sensor", err)
}

// DeleteSensor implements registry.Registry.
func (r *DB) DeleteSensor(ctx context.Context, id int64) error {
	defer r.cache.Forget()
	return r.wrap("delete sensor", r.write(ctx, func(w wtx) error {
		res, err := w.exec(`DELETE FROM sensors WHERE id = ?`, id)
		if err == nil {
			err = mustAffect(res)
		}
		return err
	}))
}

const consumerCols = `id, owner_id, name, description, key_gen, created_at, updated_at`

func scanConsumer(row interface{ Scan(...any) error }) (registry.Consumer, error) {
	var c registry.Consumer
	var cr, m int64
	err := row.Scan(&c.ID, &c.OwnerID, &c.Name, &c.Description, &c.KeyGen, &cr, &m)
	c.CreatedAt, c.UpdatedAt = fromMicros(cr), fromMicros(m)
	return c, err
}

// withGrants fills c.SensorIDs.
func (r *DB) withGrants(ctx context.Context, c registry.Consumer) (registry.Consumer, error) {
	rows, err := r.rows(ctx, `SELECT sensor_id FROM grants WHERE consumer_id = ? ORDER BY sensor_id`, c.ID)
	if err != nil {
		return c, err
	}
	defer rows.Close()
	c.SensorIDs = []int64{}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return c, err
		}
		c.SensorIDs = append(c.SensorIDs, id)
	}
	sort.Slice(c.SensorIDs, func(i, j int) bool { return c.SensorIDs[i] < c.SensorIDs[j] })
	return c, rows.Err()
}

// CreateConsumer implements registry.Registry.
func (r *DB) CreateConsumer(ctx context.Context, c registry.Consumer) (registry.Consumer, error) {
	now := micros(r.now())
	var out registry.Consumer
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanConsumer(w.row(`INSERT INTO consumers (owner_id, name, description, key_gen, created_at, updated_at)
		VALUES (?, ?, ?, 0, ?, ?) RETURNING `+consumerCols, c.OwnerID, c.Name, c.Description, now, now))
		return err
	})
	r.cache.Forget(cacheKey{keyConsumer, out.ID, 0})
	out.SensorIDs = []int64{}
	return out, r.wrap("create consumer", err)
}

// GetConsumer implements registry.Registry.
func (r *DB) GetConsumer(ctx context.Context, id int64) (registry.Consumer, error) {
	return get(r.cache, cacheKey{keyConsumer, id, 0}, func() (registry.Consumer, error) {
		c, err := scanConsumer(r.row(ctx, `SELECT `+consumerCols+` FROM consumers WHERE id = ?`, id))
		if err == nil {
			c, err = r.withGrants(ctx, c)
		}
		return c, r.wrap("get consumer", err)
	}, func(c registry.Consumer) registry.Consumer {
		c.SensorIDs = slices.Clone(c.SensorIDs)
		return c
	})
}

// ListConsumers implements registry.Registry.
func (r *DB) ListConsumers(ctx context.Context, ownerID int64, p registry.Page) ([]registry.Consumer, error) {
	q := `SELECT ` + consumerCols + ` FROM consumers WHERE id > ?`
	args := []any{p.AfterID}
	if ownerID != 0 {
		q += ` AND owner_id = ?`
		args = append(args, ownerID)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, p.Limit)
	rows, err := r.rows(ctx, q, args...)
	if err != nil {
		return nil, r.wrap("list consumers", err)
	}
	var out []registry.Consumer
	for rows.Next() {
		c, err := scanConsumer(rows)
		if err != nil {
			rows.Close()
			return nil, r.wrap("list consumers", err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, r.wrap("list consumers", err)
	}
	for i := range out {
		if out[i], err = r.withGrants(ctx, out[i]); err != nil {
			return nil, r.wrap("list consumers", err)
		}
	}
	return out, nil
}

// UpdateConsumer implements registry.Registry.
func (r *DB) UpdateConsumer(ctx context.Context, c registry.Consumer) (registry.Consumer, error) {
	now := micros(r.now())
	var out registry.Consumer
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanConsumer(w.row(`UPDATE consumers SET name = ?, description = ?, updated_at = ?
		WHERE id = ? RETURNING `+consumerCols, c.Name, c.Description, now, c.ID))
		return err
	})
	r.cache.Forget(cacheKey{keyConsumer, c.ID, 0})
	if err == nil {
		out, err = r.withGrants(ctx, out)
	}
	return out, r.wrap("update consumer", err)
}

// DeleteConsumer implements registry.Registry.
func (r *DB) DeleteConsumer(ctx context.Context, id int64) error {
	defer r.cache.Forget()
	return r.wrap("delete consumer", r.write(ctx, func(w wtx) error {
		res, err := w.exec(`DELETE FROM consumers WHERE id = ?`, id)
		if err == nil {
			err = mustAffect(res)
		}
		return err
	}))
}

// RotateConsumerKey implements registry.Registry.
func (r *DB) RotateConsumerKey(ctx context.Context, id int64) (registry.Consumer, error) {
	now := micros(r.now())
	var c registry.Consumer
	err := r.write(ctx, func(w wtx) (err error) {
		c, err = scanConsumer(w.row(`UPDATE consumers SET key_gen = key_gen + 1, updated_at = ?
		WHERE id = ? RETURNING `+consumerCols, now, id))
		return err
	})
	r.cache.Forget(cacheKey{keyConsumer, id, 0})
	if err == nil {
		c, err = r.withGrants(ctx, c)
	}
	return c, r.wrap("rotate consumer key", err)
}

// Grant implements registry.Registry.
func (r *DB) Grant(ctx context.Context, consumerID, sensorID int64) error {
	defer r.cache.Forget(cacheKey{keyConsumer, consumerID, 0}, cacheKey{keyGrant, consumerID, sensorID})
	return r.wrap("grant", r.write(ctx, func(w wtx) error {
		checks := []struct {
			q  string
			id int64
		}{{`SELECT id FROM consumers WHERE id = ?`, consumerID}, {`SELECT id FROM sensors WHERE id = ?`, sensorID}}
		for _, c := range checks {
			var got int64
			if err := w.row(c.q, c.id).Scan(&got); err != nil {
				return err
			}
		}
		var n int
		if err := w.row(`SELECT COUNT(*) FROM grants WHERE consumer_id = ? AND sensor_id = ?`, consumerID, sensorID).Scan(&n); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		_, err := w.exec(`INSERT INTO grants (consumer_id, sensor_id) VALUES (?, ?)`, consumerID, sensorID)
		return err
	}))
}

// Revoke implements registry.Registry.
func (r *DB) Revoke(ctx context.Context, consumerID, sensorID int64) error {
	defer r.cache.Forget(cacheKey{keyConsumer, consumerID, 0}, cacheKey{keyGrant, consumerID, sensorID})
	return r.wrap("revoke", r.write(ctx, func(w wtx) error {
		res, err := w.exec(`DELETE FROM grants WHERE consumer_id = ? AND sensor_id = ?`, consumerID, sensorID)
		if err == nil {
			err = mustAffect(res)
		}
		return err
	}))
}

// HasGrant implements registry.Registry.
func (r *DB) HasGrant(ctx context.Context, consumerID, sensorID int64) (bool, error) {
	return get(r.cache, cacheKey{keyGrant, consumerID, sensorID}, func() (bool, error) {
		var n int
		err := r.row(ctx, `SELECT COUNT(*) FROM grants WHERE consumer_id = ? AND sensor_id = ?`, consumerID, sensorID).Scan(&n)
		return n > 0, r.wrap("has grant", err)
	}, same)
}
