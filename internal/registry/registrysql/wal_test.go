package registrysql_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

// TestWALStaysBoundedUnderLoad keeps 16 writers and 4 readers busy and
// checks the write-ahead log never outgrows its documented bound
// (WALMaxBytes plus one group's pages; asserted as 4 × WALMaxBytes) while
// the workload logs many times that much.
func TestWALStaysBoundedUnderLoad(t *testing.T) {
	const maxBytes = 128 << 10
	const bound = 4 * maxBytes
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "r.db")
	r, err := registrysql.OpenSQLiteConfig(ctx, path, registrysql.SQLiteConfig{WALMaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u, err := r.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	var (
		maxSeen atomic.Int64
		lastID  atomic.Int64
		stop    = make(chan struct{})
		readers sync.WaitGroup
		writers sync.WaitGroup
	)
	observe := func() {
		if s := r.WALSize(); s > maxSeen.Load() {
			maxSeen.Store(s)
		}
	}
	for i := 0; i < 4; i++ {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if n := lastID.Load(); n > 0 {
					id := 1 + rand.Int64N(n)
					r.GetDevice(ctx, id)
					r.ListSensors(ctx, id)
				}
				if _, err := r.ListDevices(ctx, registry.DeviceFilter{}, registry.Page{AfterID: rand.Int64N(lastID.Load() + 1), Limit: 50}); err != nil {
					t.Error(err)
					return
				}
				observe()
			}
		}()
	}
	// Write until the checkpoints have emptied 6 × the bound of log: an
	// unbounded log would be far past the bound by then.
	var failed atomic.Int64
	for w := 0; w < 16; w++ {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for i := 0; r.WALLogged() < 8*bound && i < 100_000; i++ {
				d, err := r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: fmt.Sprintf("d-%d-%d", w, i), Labels: map[string]string{"k": "v"}})
				if err != nil {
					failed.Add(1)
					t.Error(err)
					return
				}
				lastID.Store(d.ID)
				if _, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "s", Type: registry.TypeDouble}); err != nil {
					t.Error(err)
					return
				}
				observe()
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
	done, notDone := r.WALCheckpoints()
	t.Logf("devices=%d max_wal=%d logged=%d checkpoints=%d incomplete=%d", lastID.Load(), maxSeen.Load(), r.WALLogged(), done, notDone)
	if r.WALLogged() < 8*bound {
		t.Fatalf("workload logged only %d bytes; the test proves nothing below %d", r.WALLogged(), 8*bound)
	}
	if m := maxSeen.Load(); m > bound {
		t.Fatalf("write-ahead log reached %d bytes, bound is %d", m, bound)
	}
}
