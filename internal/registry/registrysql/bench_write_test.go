package registrysql_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

// BenchmarkWritePath measures the SQLite registry's write path without HTTP:
// CreateDevice from 16 concurrent callers (group commit), ImportDevices'
// CreateDevices of 10,000 devices with one sensor each, and the point read
// of a read-cache miss under a cancellable context, as a request's.
//
//	go test -run '^$' -bench WritePath -benchtime 3s ./internal/registry/registrysql/
func BenchmarkWritePath(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B, cfg registrysql.SQLiteConfig) (*registrysql.DB, int64) {
		r, err := registrysql.OpenSQLiteConfig(ctx, filepath.Join(b.TempDir(), "r.db"), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { r.Close() })
		u, err := r.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "h"})
		if err != nil {
			b.Fatal(err)
		}
		return r, u.ID
	}
	b.Run("CreateDevice16", func(b *testing.B) {
		r, owner := open(b, registrysql.SQLiteConfig{})
		var seq atomic.Int64
		b.SetParallelism(16) // GOMAXPROCS × 16 callers
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				d := registry.Device{OwnerID: owner, Name: fmt.Sprint("dev-", seq.Add(1)), Description: "bench", Labels: map[string]string{"site": "plant-7"}}
				if _, err := r.CreateDevice(ctx, d); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("Import10000", func(b *testing.B) {
		r, owner := open(b, registrysql.SQLiteConfig{})
		n := 0
		for b.Loop() {
			rows := make([]registry.NewDevice, registry.MaxImport)
			for i := range rows {
				rows[i] = registry.NewDevice{
					Device:     registry.Device{OwnerID: owner, Name: fmt.Sprint("device-", n), Labels: map[string]string{"site": "plant-7"}},
					ExternalID: fmt.Sprint("inv-", n), Sensors: []registry.Sensor{{Name: "temp", Type: registry.TypeDouble, Unit: "C"}},
				}
				n++
			}
			if _, err := r.CreateDevices(ctx, rows); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "devices/s")
	})
	b.Run("GetDeviceMissCancellableCtx", func(b *testing.B) {
		r, owner := open(b, registrysql.SQLiteConfig{CacheEntries: -1})
		var ids []int64
		rows := make([]registry.NewDevice, 5000)
		for i := range rows {
			rows[i] = registry.NewDevice{Device: registry.Device{OwnerID: owner, Name: fmt.Sprint("device-", i), Labels: map[string]string{"site": "plant-7"}}}
		}
		out, err := r.CreateDevices(ctx, rows)
		if err != nil {
			b.Fatal(err)
		}
		for _, d := range out {
			ids = append(ids, d.Device.ID)
		}
		cctx, cancel := context.WithCancel(ctx) // a request's context can end
		defer cancel()
		for b.Loop() {
			if _, err := r.GetDevice(cctx, ids[rand.IntN(len(ids))]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
