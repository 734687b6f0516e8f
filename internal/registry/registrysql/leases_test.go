package registrysql_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestPostgres_ConnectionsOfAnExpiredLeaseAreOffline: two processes (two
// handles on one PostgreSQL registry) count connections of one device; the
// first stops renewing its lease (killed): once the lease has expired its
// connection reads as closed at once, a sweep by the survivor uncounts it
// for good and announces the change, the dead handle's late disconnect
// does not uncount the survivor's connection, and a handle whose lease was
// swept learns it on renewal (lost) to record its connections again.
func TestPostgres_ConnectionsOfAnExpiredLeaseAreOffline(t *testing.T) {
	dsn := testenv.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	name := fmt.Sprintf("reg_lease_%d_%d", pgSeq.Add(1), testPID())
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	ctx := context.Background()
	open := func() *registrysql.DB {
		r, err := registrysql.OpenPostgres(ctx, withDB(dsn, name))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close() })
		return r
	}
	dead, live := open(), open()
	if dead.Owner() == live.Owner() {
		t.Fatalf("two handles share owner %q", dead.Owner())
	}
	u, err := live.CreateUser(ctx, registry.User{Username: "leaseowner", PasswordHash: "x", Role: registry.RoleUser})
	if err != nil {
		t.Fatal(err)
	}
	d, err := live.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	state := func() registry.DeviceState {
		t.Helper()
		s, err := live.GetDeviceState(ctx, d.ID)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Now()
	if err := dead.DeviceConnected(ctx, d.ID, "mqtt", now); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Connections != 1 || s.Edge != "mqtt" {
		t.Fatalf("after the first process's connection: %+v", s)
	}
	if lost, err := dead.RenewConnectionLease(ctx, time.Now()); err != nil || lost {
		t.Fatalf("renewing a live lease: lost=%v err=%v", lost, err)
	}
	// Nothing expired yet: a sweep changes nothing.
	if ds, err := live.SweepConnections(ctx, time.Now()); err != nil || len(ds) != 0 {
		t.Fatalf("sweep with no expired lease: %v %v", ds, err)
	}
	if s := state(); s.Connections != 1 {
		t.Fatalf("a live lease's connection uncounted: %+v", s)
	}

	// The first process is killed: it renews no more. Its lease runs out
	// (set in the past, as ConnectionLeaseTTL without renewal would).
	other, err := sql.Open("pgx", withDB(dsn, name))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Exec("UPDATE connection_leases SET expires_at = $1 WHERE owner = $2",
		time.Now().Add(-time.Second).UnixMicro(), dead.Owner()); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Connections != 0 || s.Edge != "" || !s.OnlineSince.IsZero() {
		t.Fatalf("device of an expired lease reads %+v, want offline", s)
	}
	// The survivor's own connection stays counted through the sweep.
	if err := live.DeviceConnected(ctx, d.ID, "ws", time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Connections != 1 {
		t.Fatalf("one live connection and one of an expired lease: %+v", s)
	}
	changed := make(chan int64, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go live.WatchChanges(wctx, func(id int64) { changed <- id })
	time.Sleep(50 * time.Millisecond)
	ds, err := live.SweepConnections(ctx, time.Now())
	if err != nil || !slices.Equal(ds, []int64{d.ID}) {
		t.Fatalf("sweep: %v %v, want [%d]", ds, err, d.ID)
	}
	select {
	case id := <-changed:
		if id != d.ID {
			t.Errorf("sweep announced device %d, want %d", id, d.ID)
		}
	case <-time.After(5 * time.Second):
		t.Error("sweep announced no change to watchers")
	}
	var stored int64
	if err := other.QueryRow("SELECT connections FROM device_state WHERE device_id = $1", d.ID).Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("stored connections after the sweep: %d %v, want 1 (the survivor's)", stored, err)
	}
	if ds, err := live.SweepConnections(ctx, time.Now()); err != nil || len(ds) != 0 {
		t.Fatalf("second sweep: %v %v, want nothing", ds, err)
	}
	// The "dead" handle's late disconnect does not take the survivor's
	// connection with it; its renewal reports the lease lost.
	if err := dead.DeviceDisconnected(ctx, d.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Connections != 1 || s.Edge == "" {
		t.Fatalf("after a swept handle's disconnect: %+v, want the survivor's connection", s)
	}
	if lost, err := dead.RenewConnectionLease(ctx, time.Now()); err != nil || !lost {
		t.Fatalf("renewing a swept lease: lost=%v err=%v, want lost", lost, err)
	}
	if err := live.DeviceDisconnected(ctx, d.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	if s := state(); s.Connections != 0 || s.Edge != "" {
		t.Fatalf("after the last disconnect: %+v", s)
	}
}
