package registrysql_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/sqlitewal/sqlitewaltest"
)

// TestOpenSQLite_FilesArePrivate: the registry holds password hashes, so
// its directory and database files (with -wal and -shm) are the platform
// user's only, and files an older version left readable are tightened.
func TestOpenSQLite_FilesArePrivate(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "registry.db")
	r, err := registrysql.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	sqlitewaltest.CheckPrivate(t, dir, true)
	r.Close()
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			mode := os.FileMode(0o644)
			if fi.IsDir() {
				mode = 0o755
			}
			_ = os.Chmod(p, mode)
		}
		return nil
	})
	r, err = registrysql.OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sqlitewaltest.CheckPrivate(t, dir, true)
}
