package app

import (
	"runtime/debug"
	"testing"
)

// TestRuntimeConfig_AppliesGCSettings: --gogc and --memory-limit (or their
// IOT_* variables) reach the Go runtime; unset, the runtime's own are kept.
func TestRuntimeConfig_AppliesGCSettings(t *testing.T) {
	oldPct, oldLimit := debug.SetGCPercent(100), debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetGCPercent(oldPct); debug.SetMemoryLimit(oldLimit) })
	t.Setenv("IOT_MEMORY_LIMIT", "3GiB")
	c, err := ParseConfig("--gogc", "40")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Runtime.Validate(); err != nil {
		t.Fatal(err)
	}
	c.Runtime.apply()
	if got := debug.SetGCPercent(100); got != 40 {
		t.Errorf("GC percent %d, want 40", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 3<<30 {
		t.Errorf("memory limit %d, want 3 GiB", got)
	}
	debug.SetMemoryLimit(oldLimit)
	(&RuntimeConfig{}).apply() // unset: left alone
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("unset --gogc changed the GC percent to %d", got)
	}
	for in, want := range map[string]int64{"": 0, "1073741824": 1 << 30, "512MiB": 512 << 20, "64KiB": 64 << 10, "2TiB": 2 << 40, "100B": 100} {
		if got, err := parseBytes(in); err != nil || got != want {
			t.Errorf("parseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}
