package sqliteraw

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	_ "modernc.org/sqlite"
)

// newWAL creates a WAL database with table t of n rows (a, s) through a
// raw writer connection, which it returns.
func newWAL(t *testing.T, n int) (string, *Conn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.db")
	w, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	if err := w.Exec("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; CREATE TABLE t (a INTEGER PRIMARY KEY, s TEXT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	insert(t, w, 0, n)
	return path, w
}

func insert(t *testing.T, w *Conn, from, to int) {
	t.Helper()
	ins, err := w.Prepare("INSERT INTO t (a, s) VALUES (?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	defer ins.Close()
	if err := w.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	for i := from; i < to; i++ {
		if err := errors.Join(ins.BindInt64(1, int64(i)), ins.BindText(2, fmt.Sprint("row-", i)), ins.Exec()); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Exec("COMMIT"); err != nil {
		t.Fatal(err)
	}
}

// get reads row a through a pooled reader.
func get(p *ReadPool, a int64) (string, error) {
	rd, err := p.Get()
	if err != nil {
		return "", err
	}
	defer p.Put(rd)
	st := rd.Stmt(0)
	if err := st.BindInt64(1, a); err != nil {
		return "", err
	}
	row, err := st.Step()
	if err != nil || !row {
		return "", errors.Join(err, fmt.Errorf("row %d: none", a))
	}
	return st.ColumnText(0), nil
}

func TestReadPool_ConcurrentReadsWithinTheBound(t *testing.T) {
	path, w := newWAL(t, 1000)
	p, err := OpenReadPool(path, 3, "PRAGMA busy_timeout=5000;", "SELECT s FROM t WHERE a = ?")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				a := int64((g*500 + i) % 1000)
				s, err := get(p, a)
				if err == nil && s != fmt.Sprint("row-", a) {
					err = fmt.Errorf("row %d read %q", a, s)
				}
				if err == nil && p.Open() > 3 {
					err = fmt.Errorf("%d connections open, bound 3", p.Open())
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	// The writer commits meanwhile: WAL readers never block it.
	insert(t, w, 1000, 2000)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if s, err := get(p, 1999); err != nil || s != "row-1999" {
		t.Fatalf("a row committed before the read: %q, %v", s, err)
	}
}

// TestReadPool_PutEndsTheReadTransaction: a reader left in the middle of a
// result set holds a WAL snapshot (a TRUNCATE checkpoint cannot complete);
// Put ends it.
func TestReadPool_PutEndsTheReadTransaction(t *testing.T) {
	path, w := newWAL(t, 100)
	p, err := OpenReadPool(path, 1, "", "SELECT s FROM t WHERE a >= ? ORDER BY a")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	checkpoint := func() int {
		db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(0)")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var busy, logged, done int
		if err := db.QueryRow("PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &done); err != nil {
			t.Fatal(err)
		}
		return busy
	}
	rd, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	st := rd.Stmt(0)
	st.BindInt64(1, 0)
	if row, err := st.Step(); err != nil || !row {
		t.Fatal(row, err)
	}
	insert(t, w, 100, 200) // frames the open snapshot does not see
	if checkpoint() != 1 {
		t.Fatal("checkpoint completed while a reader held its snapshot: the test proves nothing")
	}
	p.Put(rd) // without Reset
	if checkpoint() != 0 {
		t.Fatal("checkpoint still blocked after Put: the reader kept its read transaction")
	}
}

func TestReadPool_ReadOnly(t *testing.T) {
	path, _ := newWAL(t, 1)
	p, err := OpenReadPool(path, 1, "", "DELETE FROM t")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rd, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Put(rd)
	if _, err := rd.Stmt(0).Step(); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Fatalf("a write through a pooled reader: %v", err)
	}
}

func TestReadPool_Closed(t *testing.T) {
	path, _ := newWAL(t, 10)
	p, err := OpenReadPool(path, 2, "", "SELECT s FROM t WHERE a = ?")
	if err != nil {
		t.Fatal(err)
	}
	inUse, err := p.Get()
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Get() // opens the second connection
	if err != nil {
		t.Fatal(err)
	}
	p.Put(second)
	// A third Get waits for a reader to come back; Close wakes it.
	waited := make(chan error, 1)
	go func() {
		rd, err := p.Get()
		if err == nil {
			p.Put(rd)
		}
		waited <- err
	}()
	// Let the waiter take the idle one or block; either way Close must
	// leave no connection open once everything is put back.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-waited; err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("Get racing Close: %v", err)
	}
	if _, err := get(p, 1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get after Close: %v, want ErrClosed", err)
	}
	if p.Open() != 1 {
		t.Fatalf("%d connections open with one in use, want 1", p.Open())
	}
	p.Put(inUse)
	if p.Open() != 0 {
		t.Fatalf("%d connections open after the last was put back, want 0", p.Open())
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestReadPool_BadInput(t *testing.T) {
	path, _ := newWAL(t, 1)
	if _, err := OpenReadPool(path, 0, "", "SELECT 1"); err == nil {
		t.Fatal("a pool of 0 connections opened")
	}
	if _, err := OpenReadPool(path, 1, "", "SELECT * FROM missing"); err == nil || !strings.Contains(err.Error(), "no such table: missing") {
		t.Fatalf("bad query: %v", err)
	}
	if _, err := OpenReadPool(filepath.Join(t.TempDir(), "no", "such", "t.db"), 1, "", "SELECT 1"); err == nil {
		t.Fatal("a pool on a missing directory opened")
	}
}
