package buswal_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/bus/buswal"
)

// TestOpen_FilesArePrivate: the log holds every device's readings, so its
// directory and files are readable by the platform's user only, whatever
// the umask.
func TestOpen_FilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "wal")
	l := open(t, buswal.Config{Dir: dir, SegmentBytes: 512})
	publishN(t, l, 0, 20) // several segments
	drain(t, l, 20)
	publishN(t, l, 20, 5)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
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
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("only %d entries under %s", n, dir)
	}
}
