package registrysql_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

// BenchmarkGrowth measures registry reads without HTTP on a small (1,000
// devices) and a large (200,000 devices, one sensor each) SQLite registry
// of one owner: the first and the last page of 100 (by key, over the
// (owner_id, id) index), and GetDevice/ListSensors of random devices
// (mostly read-cache misses in the large registry), and GetDevice of a
// working set of 1,000 devices (read-cache hits at any size), and the
// SQLite reads without the cache (…Uncached: on the raw read connections,
// and …UncachedDatabaseSQL through database/sql).
//
//	go test -run '^$' -bench Growth -benchtime 3000x ./internal/registry/registrysql/
func BenchmarkGrowth(b *testing.B) {
	for _, n := range []int{1_000, 200_000} {
		ctx := context.Background()
		path := filepath.Join(b.TempDir(), "r.db")
		r, err := registrysql.OpenSQLite(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		u, _ := r.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "h"})
		var ids []int64
		for from := 0; from < n; from += registry.MaxImport {
			rows := make([]registry.NewDevice, 0, registry.MaxImport)
			for i := from; i < min(from+registry.MaxImport, n); i++ {
				rows = append(rows, registry.NewDevice{
					Device:     registry.Device{OwnerID: u.ID, Name: fmt.Sprint("device-", i), Labels: map[string]string{"site": "plant-7"}},
					ExternalID: fmt.Sprint("inv-", i), Sensors: []registry.Sensor{{Name: "temp", Type: registry.TypeDouble}},
				})
			}
			out, err := r.CreateDevices(ctx, rows)
			if err != nil {
				b.Fatal(err)
			}
			for _, d := range out {
				ids = append(ids, d.Device.ID)
			}
		}
		f := registry.DeviceFilter{OwnerID: u.ID}
		page := func(after int64) func(b *testing.B) {
			return func(b *testing.B) {
				for b.Loop() {
					if ds, err := r.ListDevices(ctx, f, registry.Page{AfterID: after, Limit: 100}); err != nil || len(ds) != 100 {
						b.Fatal(err, len(ds))
					}
				}
			}
		}
		b.Run(fmt.Sprintf("devices=%d/ListDevicesFirstPage", n), page(0))
		b.Run(fmt.Sprintf("devices=%d/ListDevicesLastPage", n), page(ids[len(ids)-101]))
		b.Run(fmt.Sprintf("devices=%d/GetDevice", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := r.GetDevice(ctx, ids[rand.IntN(len(ids))]); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The working set: 1,000 devices read again and again stay in the
		// LRU read cache whatever the registry's size.
		hot := ids[len(ids)-1_000:]
		b.Run(fmt.Sprintf("devices=%d/GetDeviceHot1000", n), func(b *testing.B) {
			for _, id := range hot { // warm, untimed: b.Loop resets the timer
				r.GetDevice(ctx, id)
			}
			for b.Loop() {
				if _, err := r.GetDevice(ctx, hot[rand.IntN(len(hot))]); err != nil {
					b.Fatal(err)
				}
			}
		})
		// The SQLite point read itself: the same file without a read cache,
		// on the raw read connections and through database/sql.
		for _, via := range []struct {
			name string
			cfg  registrysql.SQLiteConfig
		}{{"", registrysql.SQLiteConfig{CacheEntries: -1}}, {"DatabaseSQL", registrysql.SQLiteConfig{CacheEntries: -1, DatabaseSQLReads: true}}} {
			nc, err := registrysql.OpenSQLiteConfig(ctx, path, via.cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Run(fmt.Sprintf("devices=%d/GetDeviceUncached%s", n, via.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := nc.GetDevice(ctx, ids[rand.IntN(len(ids))]); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("devices=%d/ListSensorsUncached%s", n, via.name), func(b *testing.B) {
				for b.Loop() {
					if ss, err := nc.ListSensors(ctx, ids[rand.IntN(len(ids))]); err != nil || len(ss) != 1 {
						b.Fatal(err)
					}
				}
			})
			// A REST ListSensors: the device (ownership), then its sensors.
			b.Run(fmt.Sprintf("devices=%d/GetDeviceListSensorsUncached%s", n, via.name), func(b *testing.B) {
				for b.Loop() {
					id := ids[rand.IntN(len(ids))]
					if _, err := nc.GetDevice(ctx, id); err != nil {
						b.Fatal(err)
					}
					if ss, err := nc.ListSensors(ctx, id); err != nil || len(ss) != 1 {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("devices=%d/DeviceWithSensorsUncached%s", n, via.name), func(b *testing.B) {
				for b.Loop() {
					if _, ss, err := nc.DeviceWithSensors(ctx, ids[rand.IntN(len(ids))]); err != nil || len(ss) != 1 {
						b.Fatal(err)
					}
				}
			})
			b.Run(fmt.Sprintf("devices=%d/ListDevicesLastPageUncached%s", n, via.name), func(b *testing.B) {
				for b.Loop() {
					if ds, err := nc.ListDevices(ctx, f, registry.Page{AfterID: ids[len(ids)-101], Limit: 100}); err != nil || len(ds) != 100 {
						b.Fatal(err, len(ds))
					}
				}
			})
			nc.Close()
		}
		b.Run(fmt.Sprintf("devices=%d/ListSensors", n), func(b *testing.B) {
			for b.Loop() {
				if ss, err := r.ListSensors(ctx, ids[rand.IntN(len(ids))]); err != nil || len(ss) != 1 {
					b.Fatal(err)
				}
			}
		})
		r.Close()
	}
}
