package sqlitewal_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/sqlitewal"
	"github.com/iotplatform/iotplatform/internal/sqlitewal/sqlitewaltest"
)

func TestPrivate_CreatesAndTightens(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "x.db")
	if err := sqlitewal.Private(path); err != nil {
		t.Fatal(err)
	}
	sqlitewaltest.CheckPrivate(t, dir, false)
	// Files an older version left group- and world-readable are tightened.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := sqlitewal.Private(path); err != nil {
		t.Fatal(err)
	}
	sqlitewaltest.CheckPrivate(t, dir, true)
}
