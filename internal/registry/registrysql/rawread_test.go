package registrysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// openRaw opens an SQLite registry without the read cache, so every read
// goes to SQLite.
func openRaw(t *testing.T) *DB {
	t.Helper()
	r, err := OpenSQLiteConfig(context.Background(), filepath.Join(t.TempDir(), "r.db"), SQLiteConfig{CacheEntries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if r.raw == nil {
		t.Fatal("SQLite registry opened without raw reads")
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestRawReads_SameAsDatabaseSQL: for random rows (and missing ones), the
// raw reads return exactly what the database/sql reads return.
func TestRawReads_SameAsDatabaseSQL(t *testing.T) {
	ctx := context.Background()
	r := openRaw(t)
	labels := []map[string]string{nil, {}, {"site": "plant-7"}, {"a": "1", "b": "x\"y", "ü": "日本", "esc": "a\\b\n"}}
	var owners []int64
	for i := range 3 {
		u, err := r.CreateUser(ctx, registry.User{Username: fmt.Sprint("u", i), Role: registry.RoleUser, PasswordHash: "h"})
		if err != nil {
			t.Fatal(err)
		}
		owners = append(owners, u.ID)
	}
	var devices, sensors []int64
	for i := range 300 {
		d, err := r.CreateDevice(ctx, registry.Device{OwnerID: owners[i%3], Name: fmt.Sprint("d", i), Description: fmt.Sprint("desc ", i%7),
			Labels: labels[i%len(labels)], IngestRate: float64(i%5) * 1.5, IngestBurst: int64(i % 4)})
		if err != nil {
			t.Fatal(err)
		}
		devices = append(devices, d.ID)
		if i%10 == 0 {
			if _, err := r.RotateDeviceKey(ctx, d.ID); err != nil {
				t.Fatal(err)
			}
		}
		for j := range i % 4 { // 0 to 3 sensors, paths out of id order
			s, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: fmt.Sprint("s", j), Path: fmt.Sprint("p", 3-j),
				Unit: "C", Type: registry.TypeDouble, Description: fmt.Sprint("sensor ", j)})
			if err != nil {
				t.Fatal(err)
			}
			sensors = append(sensors, s.ID)
		}
	}
	sqlDevice := func(id int64) (registry.Device, error) {
		return scanDevice(r.row(ctx, `SELECT `+deviceCols+` FROM devices WHERE id = ?`, id))
	}
	sqlSensor := func(id int64) (registry.Sensor, error) {
		return scanSensor(r.row(ctx, `SELECT `+sensorCols+` FROM sensors WHERE id = ?`, id))
	}
	same := func(what string, raw, viaSQL any, rerr, serr error) {
		t.Helper()
		if !errors.Is(rerr, serr) && (rerr == nil || serr == nil || rerr.Error() != serr.Error()) {
			t.Fatalf("%s: raw error %v, database/sql error %v", what, rerr, serr)
		}
		if rerr == nil && !reflect.DeepEqual(raw, viaSQL) { // on error the value is not used
			t.Fatalf("%s:\nraw          %+v\ndatabase/sql %+v", what, raw, viaSQL)
		}
	}
	for range 500 {
		id := devices[rand.IntN(len(devices))]
		if rand.IntN(10) == 0 {
			id = devices[len(devices)-1] + 1 + rand.Int64N(100) // missing
		}
		a, aerr := r.raw.device(id)
		b, berr := sqlDevice(id)
		same(fmt.Sprint("device ", id), a, b, aerr, berr)
		as, aerr := r.raw.sensorsOf(id)
		bs, berr := r.listSensors(ctx, r.rows, id)
		same(fmt.Sprint("sensors of ", id), as, bs, aerr, berr)
		if len(sensors) > 0 {
			sid := sensors[rand.IntN(len(sensors))]
			if rand.IntN(10) == 0 {
				sid = -sid
			}
			a, aerr := r.raw.sensor(sid)
			b, berr := sqlSensor(sid)
			same(fmt.Sprint("sensor ", sid), a, b, aerr, berr)
		}
	}
	if _, err := r.raw.device(-1); !errors.Is(err, sql.ErrNoRows) {
		t.Fatalf("missing device: %v", err)
	}
	// Pages by key, of one owner and of all, including past the end.
	for _, owner := range append([]int64{0}, owners...) {
		for _, after := range []int64{0, devices[17], devices[150], devices[len(devices)-2], devices[len(devices)-1]} {
			for _, limit := range []int{1, 7, 100, 1000} {
				a, aerr := r.raw.devices(owner, after, limit)
				raw := r.raw
				r.raw = nil // ListDevices through database/sql
				b, berr := r.ListDevices(ctx, registry.DeviceFilter{OwnerID: owner}, registry.Page{AfterID: after, Limit: limit})
				r.raw = raw
				same(fmt.Sprintf("devices of %d after %d limit %d", owner, after, limit), a, b, aerr, errors.Unwrap(berr))
				if len(a) > limit {
					t.Fatalf("page of %d rows, limit %d", len(a), limit)
				}
			}
		}
	}
}

// TestRawReads_ConcurrentWithWrites: readers on the pool and the group
// committer's writes side by side (-race); a read that starts after a write
// returned sees it.
func TestRawReads_ConcurrentWithWrites(t *testing.T) {
	ctx := context.Background()
	r := openRaw(t)
	u, err := r.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "h"})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for i := range 20 {
		d, err := r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: fmt.Sprint("d", i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 { // writers: each owns 5 devices, renames them, reads back at once
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				id := ids[w*5+i%5]
				name := fmt.Sprint("w", w, "-", i)
				d, err := r.GetDevice(ctx, id)
				if err == nil {
					d.Name = name
					_, err = r.UpdateDevice(ctx, d)
				}
				if err == nil {
					if d, err = r.GetDevice(ctx, id); err == nil && d.Name != name {
						err = fmt.Errorf("device %d read %q after the write of %q returned", id, d.Name, name)
					}
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range 4 { // readers: pages and sensor lists
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				ds, err := r.ListDevices(ctx, registry.DeviceFilter{OwnerID: u.ID}, registry.Page{Limit: 100})
				if err == nil && len(ds) != len(ids) {
					err = fmt.Errorf("page of %d devices, want %d", len(ds), len(ids))
				}
				if err == nil {
					_, err = r.ListSensors(ctx, ids[rand.IntN(len(ids))])
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := r.raw.pool.Open(); n < 1 || n > rawPoolSize() {
		t.Fatalf("%d raw read connections open", n)
	}
}

// TestRawReads_AfterClose: reads on a closed registry fail cleanly (not
// "not found", no panic).
func TestRawReads_AfterClose(t *testing.T) {
	ctx := context.Background()
	r := openRaw(t)
	u, _ := r.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "h"})
	d, err := r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	r.Close()
	for what, err := range map[string]error{
		"GetDevice":   second(r.GetDevice(ctx, d.ID)),
		"ListSensors": second(r.ListSensors(ctx, d.ID)),
		"GetSensor":   second(r.GetSensor(ctx, 1)),
		"ListDevices": second(r.ListDevices(ctx, registry.DeviceFilter{}, registry.Page{Limit: 10})),
	} {
		if err == nil || errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("%s on a closed registry: %v", what, err)
		}
	}
}

func second[T any](_ T, err error) error { return err }

// TestDeviceWithSensors_SameAsTwoReads: DeviceWithSensors returns what
// GetDevice and ListSensors return, whichever of its two keys the read cache
// holds, and sees every write made before it (with the cache on).
func TestDeviceWithSensors_SameAsTwoReads(t *testing.T) {
	ctx := context.Background()
	r, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	u, _ := r.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "h"})
	var ids []int64
	for i := range 50 {
		d, err := r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: fmt.Sprint("d", i), Labels: map[string]string{"i": fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
		for j := range i % 3 {
			if _, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: fmt.Sprint("s", j), Type: registry.TypeDouble}); err != nil {
				t.Fatal(err)
			}
		}
	}
	check := func(id int64) {
		t.Helper()
		d, ss, err := r.DeviceWithSensors(ctx, id)
		wd, werr := r.GetDevice(ctx, id)
		if werr != nil {
			if !errors.Is(err, registry.ErrNotFound) || !errors.Is(werr, registry.ErrNotFound) {
				t.Fatalf("device %d: %v, GetDevice %v", id, err, werr)
			}
			return
		}
		wss, _ := r.ListSensors(ctx, id)
		if err != nil || !reflect.DeepEqual(d, wd) || !reflect.DeepEqual(ss, wss) {
			t.Fatalf("device %d: %+v %+v %v\nwant %+v %+v", id, d, ss, err, wd, wss)
		}
	}
	for round := range 4 { // misses, then hits of either or both keys
		for _, id := range ids {
			switch (round + int(id)) % 3 {
			case 1:
				r.GetDevice(ctx, id)
				r.GetDevice(ctx, id) // admitted: the device is cached
			case 2:
				r.ListSensors(ctx, id)
				r.ListSensors(ctx, id) // the sensors are cached
			}
			check(id)
			check(ids[len(ids)-1] + 1 + id) // missing
		}
	}
	// Writes are seen at once, whatever was cached.
	for i, id := range ids[:10] {
		d, _, err := r.DeviceWithSensors(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		d.Name = fmt.Sprint("renamed-", i)
		if _, err := r.UpdateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		s, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: id, Name: "new", Type: registry.TypeLong})
		if err != nil {
			t.Fatal(err)
		}
		got, ss, err := r.DeviceWithSensors(ctx, id)
		if err != nil || got.Name != d.Name || len(ss) == 0 || ss[len(ss)-1].ID != s.ID {
			t.Fatalf("after the writes: %q, %d sensors, %v; want %q and sensor %d last", got.Name, len(ss), err, d.Name, s.ID)
		}
	}
	r.Close()
	// (an id never read: a cached row may still be answered after Close)
	if _, _, err := r.DeviceWithSensors(ctx, ids[len(ids)-1]+10_000); err == nil || errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("on a closed registry: %v", err)
	}
}
