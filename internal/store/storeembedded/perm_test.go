package storeembedded_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/sqlitewal/sqlitewaltest"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
)

// TestOpen_FilesArePrivate: the store holds every device's readings, so its
// directory and database files (with -wal and -shm) are the platform
// user's only, and files an older version left readable are tightened.
func TestOpen_FilesArePrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(dir, "readings.db")
	s := open(t, path)
	sqlitewaltest.CheckPrivate(t, dir, true)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
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
	s2, err := storeembedded.Open(context.Background(), slog.New(slog.DiscardHandler), storeembedded.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	sqlitewaltest.CheckPrivate(t, dir, true)
}
