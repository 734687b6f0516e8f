package registrysql

import (
	"context"
	"database/sql"
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
			var ext any
			if row.ExternalID != "" {
				ext = row.ExternalID
				got, err := scanDevice(w.row(`SELECT `+deviceCols+` FROM devices WHERE owner_id = ? AND external_id = ?`, d.OwnerID, row.ExternalID))
				switch {
				case err == nil:
					ss, err := r.listSensors(ctx, w.rows, got.ID)
					if err != nil {
						return err
					}
					out[i] = registry.ImportedDevice{Device: got, Sensors: ss}
					continue
				case !errors.Is(err, sql.ErrNoRows):
					return err
				}
			}
			dev, err := scanDevice(w.row(`INSERT INTO devices (owner_id, name, description, labels, key_gen, created_at, updated_at, external_id)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?) RETURNING `+deviceCols, d.OwnerID, d.Name, d.Description, labelsJSON(d.Labels), now, now, ext))
			if err != nil {
				return &registry.RowError{Row: i, Field: "name", Err: r.wrap("create device", err)}
			}
			ss := make([]registry.Sensor, len(row.Sensors))
			for j, s := range row.Sensors {
				ss[j], err = scanSensor(w.row(`INSERT INTO sensors (device_id, name, description, unit, value_type, path, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+sensorCols, dev.ID, s.Name, s.Description, s.Unit, string(s.Type), s.Path, now, now))
				if err != nil {
					return &registry.RowError{Row: i, Field: "sensors[" + strconv.Itoa(j) + "]", Err: r.wrap("create sensor", err)}
				}
			}
			out[i] = registry.ImportedDevice{Device: dev, Sensors: ss, Created: true}
		}
		return nil
	})
	// Sensor lists of ids read before they existed may be cached empty.
	r.cache.invalidate()
	if err != nil {
		var re *registry.RowError
		if errors.As(err, &re) {
			return nil, err
		}
		return nil, r.wrap("create devices", err)
	}
	return out, nil
}
