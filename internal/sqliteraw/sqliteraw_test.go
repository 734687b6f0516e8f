package sqliteraw

import (
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

func TestRoundTrip_VisibleToDatabaseSQL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	c, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Exec("PRAGMA journal_mode=WAL; PRAGMA busy_timeout=5000; CREATE TABLE t (a INTEGER PRIMARY KEY, f REAL, s TEXT, b BLOB, n)"); err != nil {
		t.Fatal(err)
	}
	ins, err := c.Prepare("INSERT INTO t (a, f, s, b, n) VALUES (?, ?, ?, ?, ?)")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec("BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if !c.InTx() {
		t.Fatal("InTx false inside BEGIN")
	}
	long := strings.Repeat("x", 1000)
	for i := int64(0); i < 100; i++ {
		s := "short"
		if i%2 == 1 {
			s = long // a longer value after a short one reuses a grown buffer
		}
		if err := ins.BindInt64(1, i); err != nil {
			t.Fatal(err)
		}
		if err := ins.BindFloat(2, float64(i)+0.5); err != nil {
			t.Fatal(err)
		}
		if err := ins.BindText(3, s); err != nil {
			t.Fatal(err)
		}
		if err := ins.BindBlob(4, []byte{byte(i), 0, 1}); err != nil {
			t.Fatal(err)
		}
		if err := ins.BindNull(5); err != nil {
			t.Fatal(err)
		}
		if err := ins.Exec(); err != nil {
			t.Fatal(err)
		}
		if c.Changes() != 1 {
			t.Fatalf("changes = %d", c.Changes())
		}
	}
	if err := c.Exec("COMMIT"); err != nil {
		t.Fatal(err)
	}

	// A database/sql connection sees exactly what was written.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	var sum float64
	var longs int
	if err := db.QueryRow("SELECT count(*), sum(f), sum(length(s) = 1000) FROM t WHERE n IS NULL").Scan(&n, &sum, &longs); err != nil {
		t.Fatal(err)
	}
	if n != 100 || sum != 4950+50 || longs != 50 {
		t.Fatalf("count %d sum %v longs %d", n, sum, longs)
	}

	// Reads through the raw connection.
	q, err := c.Prepare("SELECT a, f, s, b, n FROM t WHERE a >= ? ORDER BY a")
	if err != nil {
		t.Fatal(err)
	}
	if err := q.BindInt64(1, 98); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		row, err := q.Step()
		if err != nil {
			t.Fatal(err)
		}
		if !row {
			break
		}
		if q.ColumnType(4) != Null || q.ColumnType(0) != Integer || q.ColumnType(1) != Float || q.ColumnType(2) != Text || q.ColumnType(3) != Blob {
			t.Fatalf("column types %d %d %d %d %d", q.ColumnType(0), q.ColumnType(1), q.ColumnType(2), q.ColumnType(3), q.ColumnType(4))
		}
		b := q.ColumnBlob(3)
		got = append(got, strings.Join([]string{string(rune('0' + q.ColumnInt64(0)%10)), q.ColumnText(2)[:1], string(rune('0' + b[0]%10))}, ""))
		if q.ColumnFloat(1) != float64(q.ColumnInt64(0))+0.5 {
			t.Fatalf("float %v", q.ColumnFloat(1))
		}
	}
	if strings.Join(got, ",") != "8s8,9x9" {
		t.Fatalf("rows %v", got)
	}
	if err := q.Reset(); err != nil {
		t.Fatal(err)
	}
}

func TestErrors_NameTheProblem(t *testing.T) {
	c, err := Open(filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Prepare("SELECT * FROM missing"); err == nil || !strings.Contains(err.Error(), "no such table: missing") {
		t.Fatalf("prepare error = %v", err)
	}
	if err := c.Exec("CREATE TABLE t (a INTEGER PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	ins, err := c.Prepare("INSERT INTO t (a) VALUES (?)")
	if err != nil {
		t.Fatal(err)
	}
	if err := ins.BindText(2, "x"); err == nil {
		t.Fatal("binding parameter 2 of 1 succeeded")
	}
	for i := 0; i < 2; i++ {
		if err := ins.BindInt64(1, 7); err != nil {
			t.Fatal(err)
		}
		err := ins.Exec()
		if i == 0 && err != nil {
			t.Fatal(err)
		}
		if i == 1 && (err == nil || !strings.Contains(err.Error(), "UNIQUE constraint failed")) {
			t.Fatalf("duplicate insert error = %v", err)
		}
	}
	// The statement is usable again after the failure.
	if err := ins.BindInt64(1, 8); err != nil {
		t.Fatal(err)
	}
	if err := ins.Exec(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir", "t.db")); err == nil {
		t.Fatal("open in a missing directory succeeded")
	}
}
