package registrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// testChangeCounter: every write that can change an answer of the batch
// reads (DeviceAccess, GetSensors) moves the change counter; the writes the
// data path makes all the time (device state, commands) and the ones that
// change no such answer leave it alone, as do writes that fail and roll back.
func testChangeCounter(t *testing.T, r registry.Registry) {
	cc, ok := r.(registry.ChangeCounter)
	if !ok {
		t.Skip("registry without a change counter (refresh rounds read every entry)")
	}
	ctx := context.Background()
	cs := commandsOf(t, r)
	u := user(t, r, "changes", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"}))
	s := must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "t", Type: registry.TypeDouble}))
	last := must(cc.Changes(ctx))
	step := func(what string, moves bool, write func() error) {
		t.Helper()
		err := write()
		if moves && err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		now := must(cc.Changes(ctx))
		switch {
		case moves && now <= last:
			t.Errorf("%s: the counter stayed at %d", what, now)
		case !moves && now != last:
			t.Errorf("%s: the counter moved from %d to %d", what, last, now)
		}
		last = now
	}
	ignore := func(_ any, err error) error { return err }
	at := time.Now()

	// What the data path writes all the time, and what no cached answer
	// depends on.
	step("device connected", false, func() error { return cs.DeviceConnected(ctx, d.ID, "mqtt", at) })
	step("device touched", false, func() error { return cs.TouchDevice(ctx, d.ID, at.Add(time.Second)) })
	step("reported attributes", false, func() error {
		return ignore(cs.SetReportedAttributes(ctx, d.ID, []byte(`{"fw":"1"}`), at))
	})
	step("desired attributes", false, func() error {
		return ignore(cs.SetDesiredAttributes(ctx, d.ID, []byte(`{"led":true}`), at))
	})
	step("command queued", false, func() error {
		c, err := cs.EnqueueCommand(ctx, registry.Command{DeviceID: d.ID, Name: "reboot", Payload: []byte(`{}`), ExpiresAt: at.Add(time.Hour)}, 10)
		if err != nil {
			return err
		}
		return ignore(cs.UpdateCommand(ctx, c.ID, registry.CommandUpdate{To: registry.CommandSent, From: []registry.CommandStatus{registry.CommandQueued}, At: at, Edge: "mqtt"}))
	})
	step("device disconnected", false, func() error { return cs.DeviceDisconnected(ctx, d.ID, at.Add(2*time.Second)) })
	step("device renamed", false, func() error {
		d2 := d
		d2.Name, d2.Description, d2.Labels = "renamed", "new", map[string]string{"site": "b"}
		return ignore(r.UpdateDevice(ctx, d2))
	})
	step("consumer, grant, user", false, func() error {
		c, err := r.CreateConsumer(ctx, registry.Consumer{OwnerID: u.ID, Name: "job"})
		if err != nil {
			return err
		}
		if err := r.Grant(ctx, c.ID, s.ID); err != nil {
			return err
		}
		if _, err := r.RotateConsumerKey(ctx, c.ID); err != nil {
			return err
		}
		return ignore(r.CreateUser(ctx, registry.User{Username: "other", Role: registry.RoleUser, PasswordHash: "h"}))
	})
	// Writes that fail and roll back: nothing of them, the counter's bump
	// included, is committed.
	step("refused bulk import", false, func() error {
		rows := bulkRows(u.ID, "x", 3)
		rows[2].Device.Name = rows[0].Device.Name
		_, err := r.CreateDevices(ctx, rows)
		if err == nil {
			return errors.New("a bulk import with a repeated name succeeded")
		}
		return nil
	})
	step("refused sensor", false, func() error {
		_, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "t", Type: registry.TypeDouble})
		if !errors.Is(err, registry.ErrAlreadyExists) {
			return err
		}
		return nil
	})
	step("update of a missing device", false, func() error {
		_, err := r.UpdateDevice(ctx, registry.Device{ID: 1 << 40, Name: "x", IngestRate: 9})
		if !errors.Is(err, registry.ErrNotFound) {
			return err
		}
		return nil
	})

	// Every write that changes an answer of the batch reads.
	step("key rotated", true, func() error { return ignore(r.RotateDeviceKey(ctx, d.ID)) })
	if keys, ok := r.(registry.Keys); ok {
		step("key rotated with expiry", true, func() error {
			return ignore(keys.RotateKey(ctx, registry.KeyDevice, d.ID, at.Add(time.Hour)))
		})
	}
	step("ingest rate", true, func() error {
		d2 := must(r.GetDevice(ctx, d.ID))
		d2.IngestRate = 5
		return ignore(r.UpdateDevice(ctx, d2))
	})
	step("ingest burst", true, func() error {
		d2 := must(r.GetDevice(ctx, d.ID))
		d2.IngestBurst = 9
		return ignore(r.UpdateDevice(ctx, d2))
	})
	step("sensor changed", true, func() error {
		s2 := s
		s2.Unit = "K"
		return ignore(r.UpdateSensor(ctx, s2))
	})
	step("sensor created", true, func() error {
		return ignore(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "h", Type: registry.TypeDouble}))
	})
	step("sensor deleted", true, func() error { return r.DeleteSensor(ctx, s.ID) })
	step("device created", true, func() error {
		return ignore(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "e"}))
	})
	step("bulk import", true, func() error { return ignore(r.CreateDevices(ctx, bulkRows(u.ID, "y", 2))) })
	step("device deleted", true, func() error { return ignore(r.DeleteDevice(ctx, d.ID)) })
	// A deleted user takes its devices and their sensors with it (ON DELETE
	// CASCADE): the cascaded deletions count too.
	v := user(t, r, "leaving", registry.RoleUser)
	vd := must(r.CreateDevice(ctx, registry.Device{OwnerID: v.ID, Name: "gone"}))
	must(r.CreateSensor(ctx, registry.Sensor{DeviceID: vd.ID, Name: "t", Type: registry.TypeDouble}))
	last = must(cc.Changes(ctx))
	step("user with devices deleted", true, func() error { return r.DeleteUser(ctx, v.ID) })
}

// countingReads counts the rows the refresh rounds ask the registry for.
type countingReads struct {
	registry.Registry
	cc               registry.ChangeCounter
	sensors, devices atomic.Int64
}

func (c *countingReads) GetSensors(ctx context.Context, ids []int64) (map[int64]registry.Sensor, error) {
	c.sensors.Add(int64(len(ids)))
	return c.Registry.(registry.SensorsReader).GetSensors(ctx, ids)
}

func (c *countingReads) Changes(ctx context.Context) (int64, error) { return c.cc.Changes(ctx) }

// testRefreshOverChangeCounter: the refresh-ahead caches of the data path
// (sensors as registry.SensorCache, device access as the verifier and the
// rate limiter keep it) over the real backend read no row in rounds during
// which nothing was written, and still see a key rotation, a new ingest
// limit, a deleted sensor and a deleted device written behind their back
// (no Forget: another process) within their TTL; a write that rolls back
// changes nothing.
func testRefreshOverChangeCounter(t *testing.T, r registry.Registry) {
	cc, ok := r.(registry.ChangeCounter)
	da, ok2 := r.(registry.DeviceAccessReader)
	if _, ok3 := r.(registry.SensorsReader); !ok || !ok2 || !ok3 {
		t.Skip("registry without a change counter or batch reads")
	}
	const ttl = 300 * time.Millisecond
	ctx := context.Background()
	u := user(t, r, "fleet", registry.RoleUser)
	imported := must(r.CreateDevices(ctx, bulkRows(u.ID, "f", 4)))
	var devs, sensors []int64
	for _, d := range imported {
		devs = append(devs, d.Device.ID)
		sensors = append(sensors, d.Sensors[0].ID)
	}
	src := &countingReads{Registry: r, cc: cc}
	sc := registry.NewSensorCache(src, ttl)
	access := cache.NewRefreshingWith(cache.Config{TTL: ttl}, cache.Refresher[int64, registry.DeviceAccess]{
		Batch: func(old map[int64]registry.DeviceAccess) map[int64]registry.DeviceAccess {
			ids := make([]int64, 0, len(old))
			for id := range old {
				ids = append(ids, id)
			}
			src.devices.Add(int64(len(ids)))
			fresh, err := da.DeviceAccess(ctx, ids)
			if err != nil {
				return nil
			}
			return fresh
		},
		Changes: registry.ChangesWithin(cc, ttl/4),
	})
	var mu sync.Mutex
	gone := map[int64]bool{} // devices and sensors expected gone
	// use reads every device and sensor still expected, as readings do.
	use := func() (map[int64]registry.DeviceAccess, map[int64]error) {
		mu.Lock()
		defer mu.Unlock()
		acc, serr := map[int64]registry.DeviceAccess{}, map[int64]error{}
		for _, id := range devs {
			a, err := access.Load(id, func() (registry.DeviceAccess, error) {
				d, err := r.GetDevice(ctx, id)
				return registry.DeviceAccess{KeyGen: d.KeyGen, IngestRate: d.IngestRate, IngestBurst: d.IngestBurst}, err
			})
			if err == nil {
				acc[id] = a
			} else if !errors.Is(err, registry.ErrNotFound) || !gone[id] {
				t.Fatalf("device %d: %v", id, err)
			}
		}
		for _, id := range sensors {
			_, serr[id] = sc.GetSensor(ctx, id)
		}
		return acc, serr
	}
	readFor := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(ttl / 20) {
			use()
		}
	}
	// quiet: rounds over a period with nothing written read no row.
	quiet := func(what string) {
		t.Helper()
		readFor(2 * ttl) // the entries loaded one by one get read under a counter value
		s0, d0 := src.sensors.Load(), src.devices.Load()
		readFor(3 * ttl)
		if s, d := src.sensors.Load()-s0, src.devices.Load()-d0; s != 0 || d != 0 {
			t.Fatalf("%s: rounds with nothing written read %d sensors and %d devices", what, s, d)
		}
	}
	// seen: the change a write made behind the caches' back is served
	// within the TTL.
	seen := func(what string, write func(), ok func(map[int64]registry.DeviceAccess, map[int64]error) bool) {
		t.Helper()
		write()
		changed := time.Now()
		for a, s := use(); !ok(a, s); a, s = use() {
			if time.Since(changed) > ttl+ttl/4 {
				t.Fatalf("%s: not seen %v after the write (TTL %v)", what, time.Since(changed), ttl)
			}
			time.Sleep(ttl / 40)
		}
	}
	quiet("start")
	if src.sensors.Load() == 0 || src.devices.Load() == 0 {
		t.Fatal("no batch read at all: the refresh rounds did not run")
	}
	rotated := devs[0]
	seen("key rotation", func() { must(r.RotateDeviceKey(ctx, rotated)) },
		func(a map[int64]registry.DeviceAccess, _ map[int64]error) bool { return a[rotated].KeyGen == 1 })
	quiet("after a rotation")
	limited := devs[1]
	seen("ingest limit", func() {
		d := must(r.GetDevice(ctx, limited))
		d.IngestRate, d.IngestBurst = 3, 4
		must(r.UpdateDevice(ctx, d))
	}, func(a map[int64]registry.DeviceAccess, _ map[int64]error) bool { return a[limited].IngestRate == 3 })
	deletedSensor := sensors[2]
	seen("sensor deletion", func() {
		mu.Lock()
		gone[deletedSensor] = true
		mu.Unlock()
		if err := r.DeleteSensor(ctx, deletedSensor); err != nil {
			t.Fatal(err)
		}
	}, func(_ map[int64]registry.DeviceAccess, s map[int64]error) bool {
		return errors.Is(s[deletedSensor], registry.ErrNotFound)
	})
	// A write that rolls back (a bulk import refused on its last row): the
	// rounds go on reading nothing, and the next real change is seen.
	rows := bulkRows(u.ID, "f", 2)
	rows[1].ExternalID = "other"
	if _, err := r.CreateDevices(ctx, rows); err == nil {
		t.Fatal("an import repeating a name succeeded")
	}
	quiet("after a rolled-back write")
	deletedDevice := devs[3]
	seen("device deletion", func() {
		mu.Lock()
		gone[deletedDevice] = true
		mu.Unlock()
		must(r.DeleteDevice(ctx, deletedDevice))
	}, func(a map[int64]registry.DeviceAccess, _ map[int64]error) bool {
		_, ok := a[deletedDevice]
		return !ok
	})
	if a, _ := use(); a[devs[2]].KeyGen != 0 || a[devs[0]].KeyGen != 1 {
		t.Fatalf("the other devices changed: %+v", a)
	}
}

// testChangeCounterNoDeadlock: the change counter is one row every device
// and sensor write bumps; a write that waits for another (a bulk import
// meeting a name another transaction is inserting, a device deletion
// cascading to a sensor being updated) must not hold it meanwhile, or the
// two deadlock. Every write ends with its own outcome.
func testChangeCounterNoDeadlock(t *testing.T, r registry.Registry) {
	if _, ok := r.(registry.ChangeCounter); !ok {
		t.Skip("registry without a change counter")
	}
	ctx := context.Background()
	u := user(t, r, "racer", registry.RoleUser)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := range 40 {
		rows := bulkRows(u.ID, fmt.Sprintf("r%d", i), 3)
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := r.CreateDevices(ctx, rows); err != nil && !errors.Is(err, registry.ErrAlreadyExists) {
				errs <- fmt.Errorf("import: %w", err)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: rows[2].Device.Name}); err != nil && !errors.Is(err, registry.ErrAlreadyExists) {
				errs <- fmt.Errorf("create: %w", err)
			}
		}()
	}
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "cascade"}))
	var ss []registry.Sensor
	for i := range 20 {
		ss = append(ss, must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: fmt.Sprintf("s%d", i), Type: registry.TypeDouble})))
	}
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.Unit = "K"
			if _, err := r.UpdateSensor(ctx, s); err != nil && !errors.Is(err, registry.ErrNotFound) {
				errs <- fmt.Errorf("update sensor: %w", err)
			}
		}()
	}
	if _, err := r.DeleteDevice(ctx, d.ID); err != nil {
		errs <- fmt.Errorf("delete device: %w", err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
