package app

import (
	"context"
	"fmt"
	"syscall"
)

// minFreeBytes is the free space under which the data dir counts as full:
// the embedded databases and the write-ahead log cannot promise durable
// writes, so the process reports not ready instead of failing each write.
const minFreeBytes = 16 << 20

// diskSpaceCheck is the readiness check of the data dir's volume.
func diskSpaceCheck(dir string, minFree uint64) func(context.Context) error {
	return func(context.Context) error {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", dir, err)
		}
		if free := st.Bavail * uint64(st.Bsize); free < minFree {
			return fmt.Errorf("data dir volume nearly full: %d bytes free, want at least %d", free, minFree)
		}
		return nil
	}
}
