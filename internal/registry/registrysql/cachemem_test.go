package registrysql

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// TestReadCache_MemoryPerEntry measures (and logs, with -v) what a cached
// device costs, the figure behind DefaultCacheEntries' documentation, and
// checks it stays within the documented ~0.7 KB (1 KB allowed).
func TestReadCache_MemoryPerEntry(t *testing.T) {
	const n = 20_000
	c := newReadCache(n, time.Minute)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range n {
		d := registry.Device{ID: int64(i), OwnerID: 1, Name: fmt.Sprint("device-", i), Labels: map[string]string{"site": "plant-7"},
			CreatedAt: time.Now(), UpdatedAt: time.Now()}
		for range 2 { // admitted on the second read
			get(c, cacheKey{keyDevice, int64(i), 0}, func() (registry.Device, error) { return d, nil }, same)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	if c.Len() != n {
		t.Fatalf("%d entries cached, want %d", c.Len(), n)
	}
	t.Logf("read cache: %.0f bytes per device entry (%d entries)", per, c.Len())
	if per > 1024 {
		t.Fatalf("%.0f bytes per cached device, documented ~0.7 KB", per)
	}
	runtime.KeepAlive(c)
}
