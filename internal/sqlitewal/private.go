package sqlitewal

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Private prepares the SQLite database at path to be readable by the
// platform's user only, whatever the umask: its directory is created or
// tightened to 0700, and the database file is created empty or tightened
// to 0600 before SQLite opens it (SQLite gives the -wal and -shm files it
// creates the main file's mode), and existing -wal and -shm files are
// tightened to 0600. Call it before sql.Open: registry and store files hold
// password hashes, keys and every device's readings.
//
// A directory owned by another user (a volume mounted by an orchestrator,
// where the platform runs as a non-root user with group access) is left as
// it is: the files in it are what must be private, and refusing to start
// there would break the deployment.
func Private(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if ownDir(dir) {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("make data dir private: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create database file: %w", err)
	}
	err = f.Chmod(0o600)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("make database file private: %w", err)
	}
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("make database file private: %w", err)
		}
	}
	return nil
}

// ownDir reports whether the process's user owns dir.
func ownDir(dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil {
		return true // let Chmod report it
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return !ok || int(st.Uid) == os.Getuid()
}
