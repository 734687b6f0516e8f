// Package sqlitewaltest checks the files of SQLite databases in tests.
package sqlitewaltest

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// CheckPrivate fails t unless dir is 0700 and every file under it 0600 (for
// the tests of the packages that store SQLite databases); withWAL also
// requires a -wal and a -shm file to be there.
func CheckPrivate(t testing.TB, dir string, withWAL bool) {
	t.Helper()
	var wal, shm bool
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s has mode %v, want %v", p, fi.Mode().Perm(), want)
		}
		wal = wal || strings.HasSuffix(p, "-wal")
		shm = shm || strings.HasSuffix(p, "-shm")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if withWAL && (!wal || !shm) {
		t.Errorf("no -wal or -shm file under %s (wal %v, shm %v): nothing checked", dir, wal, shm)
	}
}
