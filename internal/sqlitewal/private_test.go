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

// A data directory owned by someone else (a mounted volume) is left as it
// is, and the database files in it are still made private.
func TestPrivate_LeavesAnotherUsersDirectoryAlone(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give the directory to another user")
	}
	dir := filepath.Join(t.TempDir(), "volume")
	if err := os.Mkdir(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o775); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "x.db")
	if err := sqlitewal.Private(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o775 {
		t.Errorf("another user's directory changed to %v", fi.Mode().Perm())
	}
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("database file %v, want 0600", fi.Mode().Perm())
	}
}
