package storeembedded

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/iotplatform/iotplatform/internal/sqliteraw"
	"github.com/iotplatform/iotplatform/internal/store"
)

// writer is the committer's own SQLite connection for the hot paths —
// inserting readings and folding dirty minutes into rollups — bound and
// stepped without database/sql (internal/sqliteraw): through database/sql
// every value was boxed, converted, and (strings) copied into C memory per
// row, which cost more than SQLite's insert itself. Used only by the
// committer goroutine. Retention jobs, DeleteSensor, migrations and WAL
// checkpoints stay on the database/sql writer; SQLite's write lock orders
// the two connections.
type writer struct {
	// mu serialises transactions: the committer is the only user except
	// tests that compact directly.
	mu sync.Mutex
	c  *sqliteraw.Conn
	// ins inserts one reading, insMany rowsPerInsert readings (one
	// statement run per 64 rows: SQLite's per-run setup and teardown cost
	// as much as a row); dirty marks a minute for compaction; dead inserts
	// a dead letter.
	ins, insMany, dirty, dead *sqliteraw.Stmt
	// compaction: the dirty minutes, the raw rows of a range, and the
	// rollup row writes.
	selDirty, scan, put, del, clear *sqliteraw.Stmt
}

func openWriter(path string, walMaxBytes int64, busyMS int) (*writer, error) {
	c, err := sqliteraw.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open store writer: %w", err)
	}
	w := &writer{c: c}
	if walMaxBytes <= 0 {
		walMaxBytes = 16 << 20
	}
	// synchronous=NORMAL: a commit writes its WAL frames without an fsync;
	// the committer syncs the WAL file itself after every commit but those
	// of deferred writes (store.DeferSync), which Store.Sync makes durable.
	// SQLite keeps the database consistent either way.
	if err := c.Exec("PRAGMA busy_timeout=" + strconv.Itoa(busyMS) + "; PRAGMA synchronous=NORMAL; PRAGMA journal_size_limit=" + strconv.FormatInt(walMaxBytes, 10)); err != nil {
		c.Close()
		return nil, fmt.Errorf("configure store writer: %w", err)
	}
	for _, p := range []struct {
		st **sqliteraw.Stmt
		q  string
	}{
		{&w.ins, insertHead + "(?,?,?,?,?,?,?,?)"},
		{&w.insMany, insertHead + strings.TrimSuffix(strings.Repeat("(?,?,?,?,?,?,?,?),", rowsPerInsert), ",")},
		{&w.dirty, "INSERT OR IGNORE INTO rollups_dirty (sensor_id, t) VALUES (?,?)"},
		{&w.dead, "INSERT INTO dead_letters (device_id, sensor_id, protocol, reason, payload, time_ns, dl_key) VALUES (?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"},
		{&w.selDirty, "SELECT sensor_id, t FROM rollups_dirty WHERE t < ? ORDER BY sensor_id, t LIMIT ?"},
		{&w.scan, "SELECT ts, kind, v FROM readings WHERE sensor_id = ? AND ts >= ? AND ts < ? ORDER BY ts, seq"},
		{&w.put, "INSERT OR REPLACE INTO rollups (sensor_id, t, c, nc, sm, mn, mx, fts, fv, lts, lv) VALUES (?,?,?,?,?,?,?,?,?,?,?)"},
		{&w.del, "DELETE FROM rollups WHERE sensor_id = ? AND t = ?"},
		{&w.clear, "DELETE FROM rollups_dirty WHERE sensor_id = ? AND t = ?"},
	} {
		st, err := c.Prepare(p.q)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("prepare store statement: %w", err)
		}
		*p.st = st
	}
	return w, nil
}

func (w *writer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.c.Close()
}

// tx runs fn in one write transaction (BEGIN IMMEDIATE … COMMIT); any
// error rolls it back.
func (w *writer) tx(fn func() error) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.Exec("BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(); err != nil {
		if w.c.InTx() {
			if rerr := w.c.Exec("ROLLBACK"); rerr != nil {
				err = errors.Join(err, fmt.Errorf("rollback: %w", rerr))
			}
		}
		return err
	}
	if err := w.c.Exec("COMMIT"); err != nil {
		if w.c.InTx() {
			_ = w.c.Exec("ROLLBACK")
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

const (
	insertHead = "INSERT OR REPLACE INTO readings (sensor_id, ts, seq, device_id, kind, v, recv, proto) VALUES "
	// rowsPerInsert is the rows of the multi-row insert; rowArgs the
	// parameters of one row.
	rowsPerInsert = 64
	rowArgs       = 8
)

// insert writes rs: rowsPerInsert rows per statement run, then one by one.
func (w *writer) insert(rs []store.Reading) error {
	for len(rs) >= rowsPerInsert {
		for i := range rowsPerInsert {
			if err := bindReading(w.insMany, i*rowArgs, &rs[i]); err != nil {
				return err
			}
		}
		if err := w.insMany.Exec(); err != nil {
			return err
		}
		rs = rs[rowsPerInsert:]
	}
	for i := range rs {
		if err := bindReading(w.ins, 0, &rs[i]); err != nil {
			return err
		}
		if err := w.ins.Exec(); err != nil {
			return err
		}
	}
	return nil
}

// bindReading binds r to parameters base+1 … base+rowArgs.
func bindReading(st *sqliteraw.Stmt, base int, r *store.Reading) error {
	if err := st.BindInt64(base+1, r.SensorID); err != nil {
		return err
	}
	// Only the first bind can fail on a parameter index; the others are
	// in range when it is, and SQLite refuses nothing else here.
	_ = st.BindInt64(base+2, r.TimeNS)
	_ = st.BindInt64(base+3, r.Seq)
	_ = st.BindInt64(base+4, r.DeviceID)
	_ = st.BindInt64(base+5, int64(r.Value.Kind))
	if err := bindValue(st, base+6, r.Value); err != nil {
		return err
	}
	_ = st.BindInt64(base+7, r.ReceiveTimeNS)
	return st.BindText(base+8, r.Protocol)
}

// bindValue binds v as the database/sql writer stored it: REAL, INTEGER
// (bool as 0/1) or TEXT.
func bindValue(st *sqliteraw.Stmt, i int, v store.Value) error {
	switch v.Kind {
	case store.KindDouble:
		return st.BindFloat(i, v.Double)
	case store.KindLong:
		return st.BindInt64(i, v.Long)
	case store.KindBool:
		if v.Bool {
			return st.BindInt64(i, 1)
		}
		return st.BindInt64(i, 0)
	case store.KindString:
		return st.BindText(i, v.Str)
	case store.KindObject:
		return st.BindTextBytes(i, v.Object)
	}
	return fmt.Errorf("reading value of unknown kind %d", v.Kind)
}

// scanRaw calls fn for the raw rows of one sensor in [from, to), in ts order.
func (w *writer) scanRaw(sensorID, from, to int64, fn func(ts int64, num float64, isNum bool)) error {
	st := w.scan
	if err := errors.Join(st.BindInt64(1, sensorID), st.BindInt64(2, from), st.BindInt64(3, to)); err != nil {
		return err
	}
	for {
		row, err := st.Step()
		if err != nil {
			return fmt.Errorf("scan readings: %w", err)
		}
		if !row {
			return st.Reset()
		}
		ts := st.ColumnInt64(0)
		num, isNum := 0.0, false
		if st.ColumnInt64(1) <= int64(store.KindBool) {
			switch st.ColumnType(2) {
			case sqliteraw.Integer:
				num, isNum = float64(st.ColumnInt64(2)), true
			case sqliteraw.Float:
				num, isNum = st.ColumnFloat(2), true
			}
		}
		fn(ts, num, isNum)
	}
}

// dirtyMinutes returns up to limit dirty minutes starting before before, in
// (sensor, t) order.
func (w *writer) dirtyMinutes(limit int, before int64) ([]slot, error) {
	st := w.selDirty
	if err := errors.Join(st.BindInt64(1, before), st.BindInt64(2, int64(limit))); err != nil {
		return nil, err
	}
	var out []slot
	for {
		row, err := st.Step()
		if err != nil {
			return nil, fmt.Errorf("read dirty rollups: %w", err)
		}
		if !row {
			return out, st.Reset()
		}
		out = append(out, slot{st.ColumnInt64(0), st.ColumnInt64(1)})
	}
}

// putRollup writes (or, for an empty minute, deletes) a minute's summary
// and clears its dirty mark.
func (w *writer) putRollup(d slot, p *partial) error {
	var err error
	if p.Count == 0 {
		err = errors.Join(w.del.BindInt64(1, d.sensor), w.del.BindInt64(2, d.t))
		if err == nil {
			err = w.del.Exec()
		}
	} else {
		st := w.put
		err = errors.Join(st.BindInt64(1, d.sensor), st.BindInt64(2, d.t), st.BindInt64(3, p.Count), st.BindInt64(4, p.NumCount),
			st.BindFloat(5, p.Sum), bindNullF(st, 6, p.NumCount > 0, p.Min), bindNullF(st, 7, p.NumCount > 0, p.Max),
			st.BindInt64(8, p.FirstTS), bindNullF(st, 9, p.FirstNum, p.First), st.BindInt64(10, p.LastTS), bindNullF(st, 11, p.LastNum, p.Last))
		if err == nil {
			err = st.Exec()
		}
	}
	if err != nil {
		return fmt.Errorf("write rollup: %w", err)
	}
	if err := errors.Join(w.clear.BindInt64(1, d.sensor), w.clear.BindInt64(2, d.t)); err != nil {
		return err
	}
	if err := w.clear.Exec(); err != nil {
		return fmt.Errorf("clear dirty rollup: %w", err)
	}
	return nil
}

func bindNullF(st *sqliteraw.Stmt, i int, ok bool, v float64) error {
	if !ok {
		return st.BindNull(i)
	}
	return st.BindFloat(i, v)
}
