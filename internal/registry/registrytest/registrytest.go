// Package registrytest is the conformance suite every registry backend passes.
package registrytest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// Run runs the suite; newRegistry returns an empty registry for each subtest.
func Run(t *testing.T, newRegistry func(t *testing.T) registry.Registry) {
	tests := []struct {
		name string
		fn   func(t *testing.T, r registry.Registry)
	}{
		{"Users", testUsers},
		{"LastAdminCannotBeDeleted", testLastAdmin},
		{"DisabledUsers", testDisabledUsers},
		{"DevicesScopedByOwner", testDevices},
		{"CreateReturnsTheStoredRow", testCreateReturnsStoredRow},
		{"DeviceListPaginationAndFilter", testDevicePages},
		{"SensorsUniquePerDevicePath", testSensors},
		{"DeleteDeviceCascades", testDeleteDeviceCascades},
		{"KeyRotationBumpsGeneration", testRotation},
		{"DeviceCertificates", testDeviceCertificates},
		{"DeviceCertificateSquatting", testDeviceCertificateSquatting},
		{"ConsumersAndGrants", testGrants},
		{"FailedCreateLeavesNoRow", testFailedCreate},
		{"ConcurrentCreatesFailAlone", testConcurrentCreates},
		{"ReadsSeeEveryWrite", testReadAfterWrite},
		{"KeyExpiryFollowsRotation", testKeyExpiry},
		{"RefreshTokensUsedOnceAndRevocable", testRefreshTokens},
		{"AuditLogFiltersAndPages", testAuditLog},
		{"BulkImportAllOrNothing", testBulkAllOrNothing},
		{"BulkImportIdempotentByExternalID", testBulkIdempotent},
		{"KeysetPagingStableUnderWrites", testKeysetPagingStable},
		{"RulesTransitionsAlertsDeliveries", testRules},
		{"CommandLifecycle", testCommandLifecycle},
		{"DeviceState", testDeviceState},
		{"TouchDevices", testTouchDevices},
		{"BatchReads", testBatchReads},
		{"ChangeCounter", testChangeCounter},
		{"RefreshOverChangeCounter", testRefreshOverChangeCounter},
		{"ChangeCounterNoDeadlock", testChangeCounterNoDeadlock},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newRegistry(t)) })
	}
}

// must returns v, failing the test (by panic, which the test runner reports
// with a stack) when err is set.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("unexpected error: %v", err))
	}
	return v
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func user(t *testing.T, r registry.Registry, name string, role registry.Role) registry.User {
	return must(r.CreateUser(context.Background(), registry.User{Username: name, DisplayName: "D " + name, Role: role, PasswordHash: "h"}))
}

func testUsers(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	u := user(t, r, "alice", registry.RoleUser)
	if u.ID == 0 || u.CreatedAt.IsZero() || u.Role != registry.RoleUser {
		t.Fatalf("created user incomplete: %+v", u)
	}
	_, err := r.CreateUser(ctx, registry.User{Username: "alice", Role: registry.RoleUser, PasswordHash: "x"})
	wantErr(t, err, registry.ErrAlreadyExists)
	got := must(r.GetUserByName(ctx, "alice"))
	if got.ID != u.ID || got.DisplayName != "D alice" {
		t.Fatalf("GetUserByName = %+v", got)
	}
	got.DisplayName, got.TokenGen, got.PasswordHash = "Alice", 3, "h2"
	upd := must(r.UpdateUser(ctx, got))
	if upd.DisplayName != "Alice" || upd.TokenGen != 3 || upd.PasswordHash != "h2" {
		t.Fatalf("UpdateUser = %+v", upd)
	}
	_, err = r.GetUser(ctx, 9999)
	wantErr(t, err, registry.ErrNotFound)
	_, err = r.UpdateUser(ctx, registry.User{ID: 9999, Role: registry.RoleUser})
	wantErr(t, err, registry.ErrNotFound)
	user(t, r, "bob", registry.RoleUser)
	first := must(r.ListUsers(ctx, registry.Page{Limit: 1}))
	rest := must(r.ListUsers(ctx, registry.Page{AfterID: first[0].ID, Limit: 10}))
	if len(first) != 1 || len(rest) != 1 || rest[0].Username != "bob" {
		t.Fatalf("pages = %v / %v", first, rest)
	}
}

func testLastAdmin(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "root", registry.RoleAdmin)
	wantErr(t, r.DeleteUser(ctx, a.ID), registry.ErrFailedPrecondition)
	b := user(t, r, "root2", registry.RoleAdmin)
	if n := must(r.CountAdmins(ctx)); n != 2 {
		t.Fatalf("CountAdmins = %d", n)
	}
	if err := r.DeleteUser(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, r.DeleteUser(ctx, b.ID), registry.ErrNotFound)
}

// testCreateReturnsStoredRow: what CreateDevice, CreateSensor and
// CreateDevices return is exactly what reading the rows back returns (a
// backend may build the answer without reading the row back).
func testCreateReturnsStoredRow(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	devices := []registry.Device{
		must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "plain"})),
		must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "full", Description: "d", Labels: map[string]string{"site": "munich", "floor": "2"},
			IngestRate: 1.5, IngestBurst: 3})),
		must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "empty labels", Labels: map[string]string{}})),
	}
	var sensors []registry.Sensor
	for _, s := range []registry.Sensor{
		{DeviceID: devices[1].ID, Name: "t", Type: registry.TypeDouble},
		{DeviceID: devices[1].ID, Name: "h", Description: "humidity", Unit: "%", Type: registry.TypeLong, Path: "env/in"},
	} {
		sensors = append(sensors, must(r.CreateSensor(ctx, s)))
	}
	imported := must(r.CreateDevices(ctx, bulkRows(a.ID, "b", 3)))
	for _, d := range imported {
		devices = append(devices, d.Device)
	}
	for _, d := range devices {
		if got := must(r.GetDevice(ctx, d.ID)); !reflect.DeepEqual(got, d) {
			t.Errorf("created device %+v, read back %+v", d, got)
		}
	}
	if got := must(r.ListSensors(ctx, devices[1].ID)); !reflect.DeepEqual(got, sensors) {
		t.Errorf("created sensors %+v, read back %+v", sensors, got)
	}
	for _, d := range imported {
		if got := must(r.ListSensors(ctx, d.Device.ID)); !reflect.DeepEqual(got, d.Sensors) {
			t.Errorf("imported sensors %+v, read back %+v", d.Sensors, got)
		}
	}
}

func testDevices(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a, b := user(t, r, "alice", registry.RoleUser), user(t, r, "bob", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car", Description: "red", Labels: map[string]string{"site": "munich"}}))
	if d.ID == 0 || d.Labels["site"] != "munich" {
		t.Fatalf("device = %+v", d)
	}
	_, err := r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"})
	wantErr(t, err, registry.ErrAlreadyExists)
	// The same name under another owner is fine.
	must(r.CreateDevice(ctx, registry.Device{OwnerID: b.ID, Name: "car"}))
	d.Name, d.Labels = "truck", nil
	upd := must(r.UpdateDevice(ctx, d))
	if upd.Name != "truck" || len(upd.Labels) != 0 || upd.Description != "red" {
		t.Fatalf("update = %+v", upd)
	}
	// The per-device ingest limit is kept on create and update.
	lim := must(r.CreateDevice(ctx, registry.Device{OwnerID: b.ID, Name: "limited", IngestRate: 2.5, IngestBurst: 7}))
	if got := must(r.GetDevice(ctx, lim.ID)); got.IngestRate != 2.5 || got.IngestBurst != 7 {
		t.Fatalf("ingest limit = %v/%v, want 2.5/7", got.IngestRate, got.IngestBurst)
	}
	lim.IngestRate, lim.IngestBurst = 0, 100
	if got := must(r.UpdateDevice(ctx, lim)); got.IngestRate != 0 || got.IngestBurst != 100 {
		t.Fatalf("updated ingest limit = %v/%v, want 0/100", got.IngestRate, got.IngestBurst)
	}
	must(r.DeleteDevice(ctx, lim.ID))
	mine := must(r.ListDevices(ctx, registry.DeviceFilter{OwnerID: a.ID}, registry.Page{Limit: 10}))
	all := must(r.ListDevices(ctx, registry.DeviceFilter{}, registry.Page{Limit: 10}))
	if len(mine) != 1 || len(all) != 2 {
		t.Fatalf("mine=%d all=%d", len(mine), len(all))
	}
}

func testDevicePages(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	for i := range 7 {
		must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: fmt.Sprintf("Sensor_Box-%d", i)}))
	}
	must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "other%"}))
	var seen []int64
	p := registry.Page{Limit: 3}
	for {
		ds := must(r.ListDevices(ctx, registry.DeviceFilter{NameContains: "box"}, p))
		for _, d := range ds {
			seen = append(seen, d.ID)
		}
		if len(ds) < p.Limit {
			break
		}
		p.AfterID = ds[len(ds)-1].ID
	}
	if len(seen) != 7 {
		t.Fatalf("filtered pages returned %d devices, want 7", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] <= seen[i-1] {
			t.Fatalf("not ordered by id: %v", seen)
		}
	}
	if ds := must(r.ListDevices(ctx, registry.DeviceFilter{NameContains: "_box"}, registry.Page{Limit: 100})); len(ds) != 7 {
		t.Fatalf("underscore must match literally: %d", len(ds))
	}
	if ds := must(r.ListDevices(ctx, registry.DeviceFilter{NameContains: "%"}, registry.Page{Limit: 100})); len(ds) != 1 {
		t.Fatalf("percent must match literally: %d", len(ds))
	}
}

func testSensors(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"}))
	s1 := must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "pressure", Type: registry.TypeDouble, Path: "wheels/front/left", Unit: "kPa"}))
	must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "pressure", Type: registry.TypeDouble, Path: "wheels/front/right"}))
	_, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "pressure", Type: registry.TypeDouble, Path: "wheels/front/left"})
	wantErr(t, err, registry.ErrAlreadyExists)
	_, err = r.CreateSensor(ctx, registry.Sensor{DeviceID: 9999, Name: "x", Type: registry.TypeLong})
	wantErr(t, err, registry.ErrNotFound)
	got := must(r.GetSensor(ctx, s1.ID))
	if got.Type != registry.TypeDouble || got.Path != "wheels/front/left" || got.Unit != "kPa" || got.DeviceID != d.ID {
		t.Fatalf("sensor = %+v", got)
	}
	got.Unit, got.Path = "bar", "wheels/rear/left"
	if upd := must(r.UpdateSensor(ctx, got)); upd.Unit != "bar" || upd.Path != "wheels/rear/left" || upd.Type != registry.TypeDouble {
		t.Fatalf("update = %+v", upd)
	}
	if ss := must(r.ListSensors(ctx, d.ID)); len(ss) != 2 {
		t.Fatalf("ListSensors = %d", len(ss))
	}
	if err := r.DeleteSensor(ctx, s1.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, r.DeleteSensor(ctx, s1.ID), registry.ErrNotFound)
}

func testDeleteDeviceCascades(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"}))
	s := must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "t", Type: registry.TypeDouble}))
	c := must(r.CreateConsumer(ctx, registry.Consumer{OwnerID: a.ID, Name: "job"}))
	if err := r.Grant(ctx, c.ID, s.ID); err != nil {
		t.Fatal(err)
	}
	gone := must(r.DeleteDevice(ctx, d.ID))
	if len(gone) != 1 || gone[0].ID != s.ID {
		t.Fatalf("DeleteDevice returned %v", gone)
	}
	_, err := r.GetSensor(ctx, s.ID)
	wantErr(t, err, registry.ErrNotFound)
	if ok := must(r.HasGrant(ctx, c.ID, s.ID)); ok {
		t.Fatal("grant survived its sensor")
	}
	_, err = r.DeleteDevice(ctx, d.ID)
	wantErr(t, err, registry.ErrNotFound)
	// Deleting the owner removes consumers too.
	user(t, r, "root", registry.RoleAdmin)
	if err := r.DeleteUser(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	_, err = r.GetConsumer(ctx, c.ID)
	wantErr(t, err, registry.ErrNotFound)
}

func testRotation(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"}))
	if d.KeyGen != 0 {
		t.Fatalf("new device KeyGen = %d", d.KeyGen)
	}
	if d2 := must(r.RotateDeviceKey(ctx, d.ID)); d2.KeyGen != 1 {
		t.Fatalf("rotated KeyGen = %d", d2.KeyGen)
	}
	c := must(r.CreateConsumer(ctx, registry.Consumer{OwnerID: a.ID, Name: "job"}))
	if c2 := must(r.RotateConsumerKey(ctx, c.ID)); c2.KeyGen != 1 {
		t.Fatalf("rotated consumer KeyGen = %d", c2.KeyGen)
	}
	_, err := r.RotateDeviceKey(ctx, 9999)
	wantErr(t, err, registry.ErrNotFound)
}

func testGrants(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"}))
	s1 := must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "a", Type: registry.TypeDouble}))
	s2 := must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "b", Type: registry.TypeLong}))
	c := must(r.CreateConsumer(ctx, registry.Consumer{OwnerID: a.ID, Name: "job", Description: "x"}))
	_, err := r.CreateConsumer(ctx, registry.Consumer{OwnerID: a.ID, Name: "job"})
	wantErr(t, err, registry.ErrAlreadyExists)
	for _, s := range []int64{s2.ID, s1.ID, s1.ID} {
		if err := r.Grant(ctx, c.ID, s); err != nil {
			t.Fatal(err)
		}
	}
	wantErr(t, r.Grant(ctx, c.ID, 9999), registry.ErrNotFound)
	wantErr(t, r.Grant(ctx, 9999, s1.ID), registry.ErrNotFound)
	got := must(r.GetConsumer(ctx, c.ID))
	if len(got.SensorIDs) != 2 || got.SensorIDs[0] != s1.ID || got.SensorIDs[1] != s2.ID {
		t.Fatalf("SensorIDs = %v", got.SensorIDs)
	}
	if !must(r.HasGrant(ctx, c.ID, s1.ID)) {
		t.Fatal("HasGrant false after Grant")
	}
	if err := r.Revoke(ctx, c.ID, s1.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, r.Revoke(ctx, c.ID, s1.ID), registry.ErrNotFound)
	if must(r.HasGrant(ctx, c.ID, s1.ID)) {
		t.Fatal("HasGrant true after Revoke")
	}
	got.Name = "job2"
	if upd := must(r.UpdateConsumer(ctx, got)); upd.Name != "job2" || len(upd.SensorIDs) != 1 {
		t.Fatalf("UpdateConsumer = %+v", upd)
	}
	if cs := must(r.ListConsumers(ctx, a.ID, registry.Page{Limit: 10})); len(cs) != 1 || len(cs[0].SensorIDs) != 1 {
		t.Fatalf("ListConsumers = %+v", cs)
	}
	if err := r.DeleteConsumer(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, r.DeleteConsumer(ctx, c.ID), registry.ErrNotFound)
}

func testFailedCreate(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"}))
	_, err := r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car", Description: "dup"})
	wantErr(t, err, registry.ErrAlreadyExists)
	ds := must(r.ListDevices(ctx, registry.DeviceFilter{}, registry.Page{Limit: 100}))
	if len(ds) != 1 || ds[0].Description != "" {
		t.Fatalf("a failed create left rows behind: %+v", ds)
	}
}

// testConcurrentCreates: many creates at once (on SQLite, group-committed
// together), half of them repeating a name: each repeated name is created
// once and refused otherwise, every other create succeeds, and what
// succeeded is exactly what is stored.
func testConcurrentCreates(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "dev"}))
	const n = 64
	type result struct {
		name string
		id   int64
		err  error
	}
	res := make(chan result, 3*n)
	var wg sync.WaitGroup
	for i := range n {
		for _, name := range []string{fmt.Sprintf("unique-%d", i), fmt.Sprintf("shared-%d", i%8)} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				got, err := r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: name})
				res <- result{name, got.ID, err}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: fmt.Sprintf("s-%d", i%16), Type: registry.TypeDouble})
			res <- result{"sensor", 0, err}
		}()
	}
	wg.Wait()
	close(res)
	created := map[string]int64{}
	sensors := 0
	for rs := range res {
		switch {
		case rs.name == "sensor" && rs.err == nil:
			sensors++
		case rs.name == "sensor":
			wantErr(t, rs.err, registry.ErrAlreadyExists)
		case rs.err == nil:
			if _, dup := created[rs.name]; dup {
				t.Fatalf("%s created twice", rs.name)
			}
			created[rs.name] = rs.id
		default:
			wantErr(t, rs.err, registry.ErrAlreadyExists)
			if rs.name[:7] != "shared-" {
				t.Fatalf("create of %s failed: %v", rs.name, rs.err)
			}
		}
	}
	if len(created) != n+8 || sensors != 16 {
		t.Fatalf("%d devices and %d sensors created, want %d and 16", len(created), sensors, n+8)
	}
	for name, id := range created {
		if got := must(r.GetDevice(ctx, id)); got.Name != name {
			t.Fatalf("device %d is %q, its create answered %q", id, got.Name, name)
		}
	}
	if got := countDevices(t, r, a.ID); got != n+8+1 {
		t.Fatalf("%d devices stored, want %d", got, n+8+1)
	}
	if got := len(must(r.ListSensors(ctx, d.ID))); got != 16 {
		t.Fatalf("%d sensors stored, want 16", got)
	}
}

// testReadAfterWrite reads each row, changes it, and reads again: a backend
// that caches reads must never return the old row.
func testReadAfterWrite(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	must(r.GetUser(ctx, a.ID))
	a.TokenGen = 7
	must(r.UpdateUser(ctx, a))
	if got := must(r.GetUser(ctx, a.ID)); got.TokenGen != 7 {
		t.Fatalf("GetUser after UpdateUser: TokenGen %d", got.TokenGen)
	}
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car", Labels: map[string]string{"a": "1"}}))
	got := must(r.GetDevice(ctx, d.ID))
	got.Labels["a"] = "mutated by a caller"
	if again := must(r.GetDevice(ctx, d.ID)); again.Labels["a"] != "1" {
		t.Fatal("a caller's change to a returned map leaked into later reads")
	}
	must(r.RotateDeviceKey(ctx, d.ID))
	if got := must(r.GetDevice(ctx, d.ID)); got.KeyGen != 1 {
		t.Fatalf("GetDevice after rotation: KeyGen %d", got.KeyGen)
	}
	if ss := must(r.ListSensors(ctx, d.ID)); len(ss) != 0 {
		t.Fatalf("new device has %d sensors", len(ss))
	}
	s := must(r.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "t", Type: registry.TypeDouble}))
	if ss := must(r.ListSensors(ctx, d.ID)); len(ss) != 1 {
		t.Fatalf("ListSensors after CreateSensor: %d", len(ss))
	}
	s.Unit = "K"
	must(r.UpdateSensor(ctx, s))
	if got := must(r.GetSensor(ctx, s.ID)); got.Unit != "K" {
		t.Fatalf("GetSensor after UpdateSensor: unit %q", got.Unit)
	}
	c := must(r.CreateConsumer(ctx, registry.Consumer{OwnerID: a.ID, Name: "job"}))
	if must(r.HasGrant(ctx, c.ID, s.ID)) {
		t.Fatal("grant before Grant")
	}
	if err := r.Grant(ctx, c.ID, s.ID); err != nil {
		t.Fatal(err)
	}
	if got := must(r.GetConsumer(ctx, c.ID)); len(got.SensorIDs) != 1 || !must(r.HasGrant(ctx, c.ID, s.ID)) {
		t.Fatal("consumer reads do not see the grant")
	}
	if _, err := r.DeleteDevice(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	_, err := r.GetSensor(ctx, s.ID)
	wantErr(t, err, registry.ErrNotFound)
	if must(r.HasGrant(ctx, c.ID, s.ID)) {
		t.Fatal("grant of a deleted sensor still readable")
	}
	if got := must(r.GetConsumer(ctx, c.ID)); len(got.SensorIDs) != 0 {
		t.Fatal("consumer still lists a deleted sensor")
	}
}

// testDisabledUsers checks that Disabled round-trips through UpdateUser,
// GetUser, GetUserByName and ListUsers, and that disabled admins do not
// count: the last enabled admin cannot be deleted.
func testDisabledUsers(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "root", registry.RoleAdmin)
	b := user(t, r, "bob", registry.RoleAdmin)
	if b.Disabled {
		t.Fatal("a new user is disabled")
	}
	if n := must(r.CountAdmins(ctx)); n != 2 {
		t.Fatalf("CountAdmins = %d, want 2", n)
	}
	b.Disabled = true
	if got := must(r.UpdateUser(ctx, b)); !got.Disabled {
		t.Fatal("UpdateUser did not return the user disabled")
	}
	if got := must(r.GetUser(ctx, b.ID)); !got.Disabled {
		t.Fatal("GetUser: not disabled")
	}
	if got := must(r.GetUserByName(ctx, "bob")); !got.Disabled {
		t.Fatal("GetUserByName: not disabled")
	}
	us := must(r.ListUsers(ctx, registry.Page{Limit: 10}))
	if len(us) != 2 || us[0].Disabled || !us[1].Disabled {
		t.Fatalf("ListUsers: %+v", us)
	}
	if n := must(r.CountAdmins(ctx)); n != 1 {
		t.Fatalf("CountAdmins with one admin disabled = %d, want 1", n)
	}
	wantErr(t, r.DeleteUser(ctx, a.ID), registry.ErrFailedPrecondition)
	// A disabled admin may go; the enabled one stays.
	must(0, r.DeleteUser(ctx, b.ID))
	b2 := user(t, r, "carol", registry.RoleUser)
	b2.Disabled = true
	must(r.UpdateUser(ctx, b2))
	b2.Disabled = false
	if got := must(r.UpdateUser(ctx, b2)); got.Disabled {
		t.Fatal("UpdateUser did not enable the user again")
	}
}
