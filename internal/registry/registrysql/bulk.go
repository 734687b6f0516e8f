package registrysql

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// CreateDevices implements registry.Registry: one write (on SQLite one
// savepoint of a group commit, so one fsync), a statement per row.
func (r *DB) CreateDevices(ctx context.Context, rows []registry.NewDevice) ([]registry.ImportedDevice, error) {
	if len(rows) > registry.MaxImport {
		return nil, fmt.Errorf("create devices: %d rows, at most %d", len(rows), registry.MaxImport)
	}
	now := micros(r.now())
	out := make([]registry.ImportedDevice, len(rows))
	err := r.write(ctx, func(w wtx) error {
		for i, row := range rows {
			d := row.Device
			dev := newDevice(d, now)
			if row.ExternalID == "" {
				id, _, err := w.insert(`INSERT INTO devices (owner_id, name, description, labels, key_gen, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, ?, ?)`, d.OwnerID, d.Name, d.Description, labelsJSON(d.Labels), now, now)
				if err != nil {
					return &registry.RowError{Row: i, Field: "name", Err: r.wrap("create device", err)}
				}
				dev.ID = id
				if err := r.importSensors(w, now, i, dev, row.Sensors, &out[i]); err != nil {
					return err
				}
				continue
			}
			// A taken external_id inserts nothing (a taken name still
			// fails).
			id, inserted, err := w.insert(`INSERT INTO devices (owner_id, name, description, labels, key_gen, created_at, updated_at, external_id)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT (owner_id, external_id) WHERE external_id IS NOT NULL DO NOTHING`,
				d.OwnerID, d.Name, d.Description, labelsJSON(d.Labels), now, now, row.ExternalID)
			switch {
			case err != nil:
				return &registry.RowError{Row: i, Field: "name", Err: r.wrap("create device", err)}
			case !inserted:
				got, err := scanDevice(w.row(`SELECT `+deviceCols+` FROM devices WHERE owner_id = ? AND external_id = ?`, d.OwnerID, row.ExternalID))
				if err != nil {
					return err
				}
				ss, err := r.listSensors(ctx, w.rows, got.ID)
				if err != nil {
					return err
				}
				out[i] = registry.ImportedDevice{Device: got, Sensors: ss}
				continue
			}
			dev.ID = id
			if err := r.importSensors(w, now, i, dev, row.Sensors, &out[i]); err != nil {
				return err
			}
		}
		return nil
	})
	// Sensor lists of ids read before they existed may be cached empty.
	r.cache.Forget()
	if err != nil {
		var re *registry.RowError
		if errors.As(err, &re) {
			return nil, err
		}
		return nil, r.wrap("create devices", err)
	}
	return out, nil
}

// importSensors creates the sensors of an imported device and records the
// row's outcome.
func (r *DB) importSensors(w wtx, now int64, i int, dev registry.Device, sensors []registry.Sensor, out *registry.ImportedDevice) error {
	ss := make([]registry.Sensor, len(sensors))
	for j, s := range sensors {
		ss[j] = newSensor(s, dev.ID, now)
		var err error
		ss[j].ID, _, err = w.insert(`INSERT INTO sensors (device_id, name, description, unit, value_type, path, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, dev.ID, s.Name, s.Description, s.Unit, string(s.Type), s.Path, now, now)
		if err != nil {
			return &registry.RowError{Row: i, Field: "sensors[" + strconv.Itoa(j) + "]", Err: r.wrap("create sensor", err)}
		}
	}
	*out = registry.ImportedDevice{Device: dev, Sensors: ss, Created: true}
	return nil
}
