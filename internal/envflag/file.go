package envflag

import (
	"fmt"
	"os"
)

// FileReadable reports a file named by the variable env that cannot be
// opened (nil for an empty path): flags naming secrets or certificates
// refuse to start on a path that is not there.
func FileReadable(env, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", env, err)
	}
	f.Close()
	return nil
}
