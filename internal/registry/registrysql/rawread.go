package registrysql

import (
	"cmp"
	"database/sql"
	"runtime"
	"slices"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/sqliteraw"
)

// rawReads serves the SQLite registry's hot reads — a device by id, a
// device's sensors, a sensor by id, a page of devices by key — on a small
// pool of read connections of their own (internal/sqliteraw), each with
// these statements prepared once and stepped directly. Through
// database/sql a read-cache miss spent about half of its CPU outside
// SQLite: the result set set up per query (the driver reads every column's
// name and declared type anew), each value boxed into an interface and
// converted back. Each read is its own short read transaction (autocommit,
// ended when the statement is reset), so in WAL mode it never waits for the
// writer and never keeps a checkpoint from completing. The reads return
// exactly what the database/sql path returns (TestRawReads_SameAsDatabaseSQL).
type rawReads struct {
	pool *sqliteraw.ReadPool
}

// The statements of every pooled reader, by index.
const (
	rawDevice = iota
	rawSensorsOf
	rawSensor
	rawDevicesOfOwner
	rawDevices
)

var rawQueries = []string{
	rawDevice:         `SELECT ` + deviceCols + ` FROM devices WHERE id = ?`,
	rawSensorsOf:      `SELECT ` + sensorCols + ` FROM sensors WHERE device_id = ?`,
	rawSensor:         `SELECT ` + sensorCols + ` FROM sensors WHERE id = ?`,
	rawDevicesOfOwner: `SELECT ` + deviceCols + ` FROM devices WHERE id > ? AND owner_id = ? ORDER BY id LIMIT ?`,
	rawDevices:        `SELECT ` + deviceCols + ` FROM devices WHERE id > ? ORDER BY id LIMIT ?`,
}

// openRawReads opens the pool on the registry file at path (which exists
// and is migrated): at most one connection per CPU, at least two.
func openRawReads(path string) (*rawReads, error) {
	p, err := sqliteraw.OpenReadPool(path, rawPoolSize(),
		"PRAGMA busy_timeout=10000; PRAGMA mmap_size=1073741824;", rawQueries...)
	if err != nil {
		return nil, err
	}
	return &rawReads{pool: p}, nil
}

// rawPoolSize bounds the raw read connections: one per CPU, at least two
// (a read is CPU work on pages already in memory).
func rawPoolSize() int { return max(2, runtime.GOMAXPROCS(0)) }

func (x *rawReads) close() error { return x.pool.Close() }

// device reads the device id (sql.ErrNoRows if there is none).
func (x *rawReads) device(id int64) (registry.Device, error) {
	rd, err := x.pool.Get()
	if err != nil {
		return registry.Device{}, err
	}
	defer x.pool.Put(rd)
	st := rd.Stmt(rawDevice)
	if err := st.BindInt64(1, id); err != nil {
		return registry.Device{}, err
	}
	row, err := st.Step()
	if err != nil {
		return registry.Device{}, err
	}
	if !row {
		return registry.Device{}, sql.ErrNoRows
	}
	return stmtDevice(st)
}

// devices reads up to limit devices with an id above after, of owner (any
// owner when 0), in id order.
func (x *rawReads) devices(owner, after int64, limit int) ([]registry.Device, error) {
	rd, err := x.pool.Get()
	if err != nil {
		return nil, err
	}
	defer x.pool.Put(rd)
	var st *sqliteraw.Stmt
	if owner != 0 {
		st = rd.Stmt(rawDevicesOfOwner)
		err = errorsFirst(st.BindInt64(1, after), st.BindInt64(2, owner), st.BindInt64(3, int64(limit)))
	} else {
		st = rd.Stmt(rawDevices)
		err = errorsFirst(st.BindInt64(1, after), st.BindInt64(2, int64(limit)))
	}
	if err != nil {
		return nil, err
	}
	var out []registry.Device
	for {
		row, err := st.Step()
		if err != nil {
			return nil, err
		}
		if !row {
			return out, nil
		}
		d, err := stmtDevice(st)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
}

// deviceSensors reads the device id and its sensors in one read
// transaction (the device's statement stays active while the sensors are
// stepped, so both come from one snapshot): one reader, one WAL read lock,
// instead of two.
func (x *rawReads) deviceSensors(id int64) (registry.Device, []registry.Sensor, error) {
	rd, err := x.pool.Get()
	if err != nil {
		return registry.Device{}, nil, err
	}
	defer x.pool.Put(rd)
	st := rd.Stmt(rawDevice)
	if err := st.BindInt64(1, id); err != nil {
		return registry.Device{}, nil, err
	}
	row, err := st.Step()
	if err != nil {
		return registry.Device{}, nil, err
	}
	if !row {
		return registry.Device{}, nil, sql.ErrNoRows
	}
	d, err := stmtDevice(st)
	if err != nil {
		return registry.Device{}, nil, err
	}
	ss, err := stepSensors(rd.Stmt(rawSensorsOf), id)
	return d, ss, err
}

// sensorsOf reads the sensors of device, in id order (empty, not nil, when
// there are none).
func (x *rawReads) sensorsOf(device int64) ([]registry.Sensor, error) {
	rd, err := x.pool.Get()
	if err != nil {
		return nil, err
	}
	defer x.pool.Put(rd)
	return stepSensors(rd.Stmt(rawSensorsOf), device)
}

// stepSensors runs the sensors-of-a-device statement st for device.
func stepSensors(st *sqliteraw.Stmt, device int64) ([]registry.Sensor, error) {
	if err := st.BindInt64(1, device); err != nil {
		return nil, err
	}
	out := []registry.Sensor{}
	for {
		row, err := st.Step()
		if err != nil {
			return nil, err
		}
		if !row {
			break
		}
		out = append(out, stmtSensor(st))
	}
	// In the order of the (device_id, path, name) index; sorted by id here
	// as listSensors does.
	slices.SortFunc(out, func(a, b registry.Sensor) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// sensor reads the sensor id (sql.ErrNoRows if there is none).
func (x *rawReads) sensor(id int64) (registry.Sensor, error) {
	rd, err := x.pool.Get()
	if err != nil {
		return registry.Sensor{}, err
	}
	defer x.pool.Put(rd)
	st := rd.Stmt(rawSensor)
	if err := st.BindInt64(1, id); err != nil {
		return registry.Sensor{}, err
	}
	row, err := st.Step()
	if err != nil {
		return registry.Sensor{}, err
	}
	if !row {
		return registry.Sensor{}, sql.ErrNoRows
	}
	return stmtSensor(st), nil
}

// stmtDevice decodes the current row of a deviceCols query (scanDevice's
// twin).
func stmtDevice(st *sqliteraw.Stmt) (registry.Device, error) {
	d := registry.Device{
		ID: st.ColumnInt64(0), OwnerID: st.ColumnInt64(1), Name: st.ColumnText(2), Description: st.ColumnText(3),
		KeyGen: st.ColumnInt64(5), IngestRate: st.ColumnFloat(6), IngestBurst: st.ColumnInt64(7),
		CreatedAt: fromMicros(st.ColumnInt64(8)), UpdatedAt: fromMicros(st.ColumnInt64(9)),
	}
	if labels := st.ColumnText(4); labels != "" && labels != "{}" {
		var err error
		if d.Labels, err = parseLabels(labels); err != nil {
			return d, err
		}
	}
	return d, nil
}

// stmtSensor decodes the current row of a sensorCols query (scanSensor's
// twin).
func stmtSensor(st *sqliteraw.Stmt) registry.Sensor {
	return registry.Sensor{
		ID: st.ColumnInt64(0), DeviceID: st.ColumnInt64(1), Name: st.ColumnText(2), Description: st.ColumnText(3),
		Unit: st.ColumnText(4), Type: registry.ValueType(st.ColumnText(5)), Path: st.ColumnText(6),
		CreatedAt: fromMicros(st.ColumnInt64(7)), UpdatedAt: fromMicros(st.ColumnInt64(8)),
	}
}

// errorsFirst returns the first non-nil error.
func errorsFirst(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
