// Package sqliteraw is a thin connection to SQLite without database/sql:
// prepared statements are bound and stepped with direct calls into the
// pure-Go SQLite (modernc.org/sqlite/lib, the same engine and file format
// as the "sqlite" database/sql driver). It exists for hot write paths where
// database/sql's per-call work (argument boxing and conversion, a statement
// wrapper per transaction, a C copy of every bound string, column names
// fetched per query) costs more than SQLite itself.
//
// A Conn is not safe for concurrent use: one goroutine at a time (the
// connection is opened with SQLITE_OPEN_NOMUTEX). Other connections to the
// same file — database/sql pools included — may run beside it as usual
// (WAL mode, busy_timeout).
package sqliteraw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"modernc.org/libc"
	"modernc.org/libc/sys/types"
	sqlite3 "modernc.org/sqlite/lib"
)

// Result codes Step reports as a row or as the end.
const (
	rowCode  = sqlite3.SQLITE_ROW
	doneCode = sqlite3.SQLITE_DONE
)

// Column types (ColumnType).
const (
	Integer = sqlite3.SQLITE_INTEGER
	Float   = sqlite3.SQLITE_FLOAT
	Text    = sqlite3.SQLITE_TEXT
	Blob    = sqlite3.SQLITE_BLOB
	Null    = sqlite3.SQLITE_NULL
)

// Error is an SQLite failure: the extended result code and SQLite's message.
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("sqlite: %s (%d)", e.Msg, e.Code) }

// IsBusy reports whether err is SQLITE_BUSY (another connection holds the
// lock longer than busy_timeout).
func IsBusy(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Code&0xff == sqlite3.SQLITE_BUSY
}

// Conn is one SQLite connection.
type Conn struct {
	tls   *libc.TLS
	db    uintptr
	stmts []*Stmt
}

// Open opens (creating if missing) the database file at path, read-write.
// Set pragmas (journal_mode, synchronous, busy_timeout, ...) with Exec.
func Open(path string) (*Conn, error) {
	c := &Conn{tls: libc.NewTLS()}
	name, err := libc.CString(path)
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	pp := libc.Xmalloc(c.tls, types.Size_t(8))
	if pp == 0 {
		c.tls.Close()
		return nil, errors.New("sqlite: out of memory")
	}
	defer libc.Xfree(c.tls, pp)
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pp, sqlite3.SQLITE_OPEN_READWRITE|sqlite3.SQLITE_OPEN_CREATE|sqlite3.SQLITE_OPEN_NOMUTEX, 0)
	c.db = readPtr(pp)
	if rc != sqlite3.SQLITE_OK {
		err := c.err(rc)
		if c.db != 0 {
			sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		}
		c.tls.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	return c, nil
}

// readPtr reads the pointer stored at C address p.
func readPtr(p uintptr) uintptr {
	if ptrSize == 4 {
		return uintptr(binary.NativeEndian.Uint32(libc.GoBytes(p, 4)))
	}
	return uintptr(binary.NativeEndian.Uint64(libc.GoBytes(p, 8)))
}

const ptrSize = 4 << (^uintptr(0) >> 63) // 4 or 8

// err returns SQLite's error for result code rc on this connection.
func (c *Conn) err(rc int32) error {
	msg := ""
	if c.db != 0 {
		msg = libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
		if ext := sqlite3.Xsqlite3_extended_errcode(c.tls, c.db); ext&0xff == rc&0xff {
			rc = ext
		}
	}
	if msg == "" {
		msg = libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	}
	return &Error{Code: int(rc), Msg: msg}
}

// Exec runs one or more statements without arguments, discarding any rows.
func (c *Conn) Exec(sql string) error {
	s, err := libc.CString(sql)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, s)
	if rc := sqlite3.Xsqlite3_exec(c.tls, c.db, s, 0, 0, 0); rc != sqlite3.SQLITE_OK {
		return c.err(rc)
	}
	return nil
}

// Changes returns the rows changed by the last INSERT, UPDATE or DELETE.
func (c *Conn) Changes() int64 { return int64(sqlite3.Xsqlite3_changes64(c.tls, c.db)) }

// InTx reports whether a transaction is open (autocommit is off).
func (c *Conn) InTx() bool { return sqlite3.Xsqlite3_get_autocommit(c.tls, c.db) == 0 }

// Prepare compiles one statement; it lives until Close of the statement or
// of the connection.
func (c *Conn) Prepare(sql string) (*Stmt, error) {
	s, err := libc.CString(sql)
	if err != nil {
		return nil, err
	}
	defer libc.Xfree(c.tls, s)
	pp := libc.Xmalloc(c.tls, types.Size_t(8))
	if pp == 0 {
		return nil, errors.New("sqlite: out of memory")
	}
	defer libc.Xfree(c.tls, pp)
	if rc := sqlite3.Xsqlite3_prepare_v3(c.tls, c.db, s, -1, sqlite3.SQLITE_PREPARE_PERSISTENT, pp, 0); rc != sqlite3.SQLITE_OK {
		return nil, fmt.Errorf("prepare %q: %w", sql, c.err(rc))
	}
	p := readPtr(pp)
	if p == 0 {
		return nil, fmt.Errorf("prepare %q: no statement", sql)
	}
	st := &Stmt{c: c, p: p, n: int(sqlite3.Xsqlite3_bind_parameter_count(c.tls, p))}
	st.bufs = make([]cbuf, st.n+1)
	c.stmts = append(c.stmts, st)
	return st, nil
}

// Close finalizes the connection's statements and closes it.
func (c *Conn) Close() error {
	if c.db == 0 {
		return nil
	}
	for _, s := range c.stmts {
		s.finalize()
	}
	c.stmts = nil
	rc := sqlite3.Xsqlite3_close_v2(c.tls, c.db)
	var err error
	if rc != sqlite3.SQLITE_OK {
		err = c.err(rc)
	}
	c.db = 0
	c.tls.Close()
	return err
}

// cbuf is C memory owned by a statement for one bound text or blob
// parameter (bound SQLITE_STATIC: valid until the parameter is bound again).
type cbuf struct {
	p   uintptr
	cap int
}

// Stmt is a prepared statement. Bind parameters (1-based), Step, Reset.
// Bindings stay in place across Reset.
type Stmt struct {
	c    *Conn
	p    uintptr
	n    int
	bufs []cbuf
}

// BindInt64 binds parameter i.
func (s *Stmt) BindInt64(i int, v int64) error {
	if rc := sqlite3.Xsqlite3_bind_int64(s.c.tls, s.p, int32(i), v); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// BindFloat binds parameter i.
func (s *Stmt) BindFloat(i int, v float64) error {
	if rc := sqlite3.Xsqlite3_bind_double(s.c.tls, s.p, int32(i), v); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// BindNull binds NULL to parameter i.
func (s *Stmt) BindNull(i int) error {
	if rc := sqlite3.Xsqlite3_bind_null(s.c.tls, s.p, int32(i)); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// buf copies b (or str) into parameter i's C buffer and returns it.
func (s *Stmt) buf(i int, str string, b []byte) (uintptr, error) {
	if i < 1 || i > s.n {
		return 0, &Error{Code: sqlite3.SQLITE_RANGE, Msg: fmt.Sprintf("parameter %d out of range 1..%d", i, s.n)}
	}
	n := len(str) + len(b)
	if n > math.MaxInt32 {
		return 0, &Error{Code: sqlite3.SQLITE_TOOBIG, Msg: "value too large"}
	}
	cb := &s.bufs[i]
	if cb.cap < n || cb.p == 0 {
		if cb.p != 0 {
			libc.Xfree(s.c.tls, cb.p)
		}
		size := max(n, 32)
		cb.p = libc.Xmalloc(s.c.tls, types.Size_t(size))
		if cb.p == 0 {
			cb.cap = 0
			return 0, errors.New("sqlite: out of memory")
		}
		cb.cap = size
	}
	if n > 0 {
		dst := libc.GoBytes(cb.p, n)
		if b != nil {
			copy(dst, b)
		} else {
			copy(dst, str)
		}
	}
	return cb.p, nil
}

// BindText binds a copy of v to parameter i.
func (s *Stmt) BindText(i int, v string) error {
	p, err := s.buf(i, v, nil)
	if err != nil {
		return err
	}
	if rc := sqlite3.Xsqlite3_bind_text(s.c.tls, s.p, int32(i), p, int32(len(v)), 0); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// BindTextBytes binds a copy of v to parameter i as text.
func (s *Stmt) BindTextBytes(i int, v []byte) error {
	if v == nil {
		v = []byte{}
	}
	p, err := s.buf(i, "", v)
	if err != nil {
		return err
	}
	if rc := sqlite3.Xsqlite3_bind_text(s.c.tls, s.p, int32(i), p, int32(len(v)), 0); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// BindBlob binds a copy of v to parameter i (nil binds NULL).
func (s *Stmt) BindBlob(i int, v []byte) error {
	if v == nil {
		return s.BindNull(i)
	}
	p, err := s.buf(i, "", v)
	if err != nil {
		return err
	}
	if rc := sqlite3.Xsqlite3_bind_blob(s.c.tls, s.p, int32(i), p, int32(len(v)), 0); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// Step runs the statement to its next row: true when a row is available,
// false when the statement is done.
func (s *Stmt) Step() (bool, error) {
	switch rc := sqlite3.Xsqlite3_step(s.c.tls, s.p); rc {
	case rowCode:
		return true, nil
	case doneCode:
		return false, nil
	default:
		err := s.c.err(rc)
		sqlite3.Xsqlite3_reset(s.c.tls, s.p)
		return false, err
	}
}

// Exec steps the statement to its end and resets it.
func (s *Stmt) Exec() error {
	for {
		row, err := s.Step()
		if err != nil {
			return err
		}
		if !row {
			return s.Reset()
		}
	}
}

// Reset rewinds the statement so it can run again (bindings are kept).
func (s *Stmt) Reset() error {
	if rc := sqlite3.Xsqlite3_reset(s.c.tls, s.p); rc != sqlite3.SQLITE_OK {
		return s.c.err(rc)
	}
	return nil
}

// ColumnType returns the type of column i (0-based) of the current row.
func (s *Stmt) ColumnType(i int) int {
	return int(sqlite3.Xsqlite3_column_type(s.c.tls, s.p, int32(i)))
}

// ColumnInt64 returns column i (0-based) of the current row as an integer.
func (s *Stmt) ColumnInt64(i int) int64 {
	return sqlite3.Xsqlite3_column_int64(s.c.tls, s.p, int32(i))
}

// ColumnFloat returns column i (0-based) of the current row as a float.
func (s *Stmt) ColumnFloat(i int) float64 {
	return sqlite3.Xsqlite3_column_double(s.c.tls, s.p, int32(i))
}

// ColumnText returns a copy of column i (0-based) of the current row as text.
func (s *Stmt) ColumnText(i int) string {
	p := sqlite3.Xsqlite3_column_text(s.c.tls, s.p, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 || n == 0 {
		return ""
	}
	return string(libc.GoBytes(p, int(n)))
}

// ColumnBlob returns a copy of column i (0-based) of the current row as
// bytes (nil for NULL).
func (s *Stmt) ColumnBlob(i int) []byte {
	p := sqlite3.Xsqlite3_column_blob(s.c.tls, s.p, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.c.tls, s.p, int32(i))
	if p == 0 {
		return nil
	}
	return append([]byte{}, libc.GoBytes(p, int(n))...)
}

// Close finalizes the statement.
func (s *Stmt) Close() error {
	for i, x := range s.c.stmts {
		if x == s {
			s.c.stmts = append(s.c.stmts[:i], s.c.stmts[i+1:]...)
			break
		}
	}
	s.finalize()
	return nil
}

func (s *Stmt) finalize() {
	if s.p != 0 {
		sqlite3.Xsqlite3_finalize(s.c.tls, s.p)
		s.p = 0
	}
	for i := range s.bufs {
		if s.bufs[i].p != 0 {
			libc.Xfree(s.c.tls, s.bufs[i].p)
			s.bufs[i] = cbuf{}
		}
	}
}
