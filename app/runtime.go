package app

import (
	"errors"
	"flag"
	"math"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// RuntimeConfig tunes the Go garbage collector of the process: how much
// garbage it lets accumulate (GOGC) and the memory it aims to stay under
// (GOMEMLIMIT). Many connected devices make a large, mostly idle heap, where
// these trade memory for GC CPU (docs/BENCHMARKS.md, "Many devices per
// node").
type RuntimeConfig struct {
	// GOGC is the GC percentage (debug.SetGCPercent); 0 leaves the Go
	// runtime's (the GOGC variable, else 100); -1 turns the proportional
	// GC off (then set MemoryLimit).
	GOGC int
	// MemoryLimit is the soft memory limit, e.g. "3GiB" (debug.SetMemoryLimit);
	// empty leaves the Go runtime's (the GOMEMLIMIT variable, else none).
	MemoryLimit string
}

// RegisterFlags binds the runtime flags.
func (c *RuntimeConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.GOGC, "gogc", "IOT_GOGC", 0, "garbage collector percentage (like GOGC): lower uses less memory and more CPU; -1 turns it off (set --memory-limit); 0: the Go runtime's (GOGC, else 100)")
	envflag.String(fs, &c.MemoryLimit, "memory-limit", "IOT_MEMORY_LIMIT", "", "soft memory limit of the process (like GOMEMLIMIT), e.g. 3GiB or 512MiB: the GC works harder as it is approached; empty: the Go runtime's (GOMEMLIMIT, else none)")
}

// Validate checks the runtime flags.
func (c *RuntimeConfig) Validate() error {
	var errs []error
	if c.GOGC < -1 {
		errs = append(errs, envflag.Errorf("gogc", "must be -1 (off), 0 (runtime default) or a positive percentage"))
	}
	if _, err := parseBytes(c.MemoryLimit); err != nil {
		errs = append(errs, envflag.Errorf("memory-limit", "%v", err))
	}
	if c.GOGC == -1 && c.MemoryLimit == "" {
		errs = append(errs, envflag.Errorf("gogc", "-1 (off) needs --memory-limit (IOT_MEMORY_LIMIT), or the heap grows without bound"))
	}
	return errors.Join(errs...)
}

// apply sets the process's GC settings (validated); unset ones are left
// to the Go runtime.
func (c *RuntimeConfig) apply() {
	if c.GOGC != 0 {
		debug.SetGCPercent(c.GOGC)
	}
	if n, _ := parseBytes(c.MemoryLimit); n > 0 {
		debug.SetMemoryLimit(n)
	}
}

// parseBytes reads a byte size in GOMEMLIMIT's form: an integer with an
// optional unit B, KiB, MiB, GiB or TiB ("" is 0).
func parseBytes(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"B", 1}}
	num, mult := s, int64(1)
	for _, u := range units {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			num, mult = v, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > math.MaxInt64/mult {
		return 0, errors.New("must be a positive size such as 3GiB, 512MiB or 1073741824 (units B, KiB, MiB, GiB, TiB)")
	}
	return n * mult, nil
}
