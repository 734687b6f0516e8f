package registrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
)

func bulkRows(owner int64, prefix string, n int) []registry.NewDevice {
	rows := make([]registry.NewDevice, n)
	for i := range rows {
		rows[i] = registry.NewDevice{
			Device:     registry.Device{OwnerID: owner, Name: fmt.Sprintf("%s-%d", prefix, i), Labels: map[string]string{"batch": prefix}},
			ExternalID: fmt.Sprintf("ext-%s-%d", prefix, i),
			Sensors: []registry.Sensor{
				{Name: "temp", Type: registry.TypeDouble, Unit: "C", Path: "env"},
				{Name: "door", Type: registry.TypeBoolean},
			},
		}
	}
	return rows
}

func countDevices(t *testing.T, r registry.Registry, owner int64) int {
	n, p := 0, registry.Page{Limit: 1000}
	for {
		ds := must(r.ListDevices(context.Background(), registry.DeviceFilter{OwnerID: owner}, p))
		n += len(ds)
		if len(ds) < p.Limit {
			return n
		}
		p.AfterID = ds[len(ds)-1].ID
	}
}

// testBulkAllOrNothing: a bad row (name taken, or a sensor repeated) refuses
// the whole batch, naming the row, and leaves nothing behind.
func testBulkAllOrNothing(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "b-7"}))
	_, err := r.CreateDevices(ctx, bulkRows(a.ID, "b", 20))
	var re *registry.RowError
	if !errors.As(err, &re) || re.Row != 7 || re.Field != "name" || !errors.Is(err, registry.ErrAlreadyExists) {
		t.Fatalf("CreateDevices with a taken name: %v, want a RowError for row 7 wrapping ErrAlreadyExists", err)
	}
	rows := bulkRows(a.ID, "c", 5)
	rows[3].Sensors = append(rows[3].Sensors, rows[3].Sensors[0])
	_, err = r.CreateDevices(ctx, rows)
	if !errors.As(err, &re) || re.Row != 3 || re.Field != "sensors[2]" || !errors.Is(err, registry.ErrAlreadyExists) {
		t.Fatalf("CreateDevices with a repeated sensor: %v, want a RowError for row 3 sensors[2]", err)
	}
	if n := countDevices(t, r, a.ID); n != 1 {
		t.Fatalf("refused batches left %d devices, want only the 1 created before", n)
	}
	// The refused external ids are free: a corrected batch creates them all.
	out := must(r.CreateDevices(ctx, bulkRows(a.ID, "c", 5)))
	if len(out) != 5 || !out[4].Created || len(out[4].Sensors) != 2 {
		t.Fatalf("corrected batch = %+v", out)
	}
}

// testBulkIdempotent: a retried batch creates nothing and returns the same
// ids; a batch mixing old and new external ids creates only the new ones;
// external ids are scoped by owner.
func testBulkIdempotent(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a, b := user(t, r, "alice", registry.RoleUser), user(t, r, "bob", registry.RoleUser)
	first := must(r.CreateDevices(ctx, bulkRows(a.ID, "d", 50)))
	for i, d := range first {
		if !d.Created || d.Device.ID == 0 || d.Device.Name != fmt.Sprintf("d-%d", i) || d.Device.Labels["batch"] != "d" ||
			len(d.Sensors) != 2 || d.Sensors[0].DeviceID != d.Device.ID || d.Sensors[0].Path != "env" || d.Sensors[1].Type != registry.TypeBoolean {
			t.Fatalf("row %d = %+v", i, d)
		}
		got := must(r.ListSensors(ctx, d.Device.ID))
		if len(got) != 2 {
			t.Fatalf("device %d has %d sensors, want 2", d.Device.ID, len(got))
		}
	}
	again := must(r.CreateDevices(ctx, bulkRows(a.ID, "d", 50)))
	for i := range again {
		if again[i].Created || again[i].Device.ID != first[i].Device.ID || len(again[i].Sensors) != 2 ||
			again[i].Sensors[0].ID != first[i].Sensors[0].ID || again[i].Sensors[1].ID != first[i].Sensors[1].ID {
			t.Fatalf("retried row %d = %+v, want the existing device %+v", i, again[i], first[i])
		}
	}
	if n := countDevices(t, r, a.ID); n != 50 {
		t.Fatalf("after a retry alice has %d devices, want 50", n)
	}
	mixed := bulkRows(a.ID, "d", 52)
	out := must(r.CreateDevices(ctx, mixed))
	if out[10].Created || out[10].Device.ID != first[10].Device.ID || !out[50].Created || !out[51].Created {
		t.Fatalf("mixed batch: row 10 created=%v, rows 50/51 created=%v/%v", out[10].Created, out[50].Created, out[51].Created)
	}
	// Bob's rows with alice's external ids are bob's own devices.
	bobs := must(r.CreateDevices(ctx, bulkRows(b.ID, "d", 3)))
	if !bobs[0].Created || bobs[0].Device.OwnerID != b.ID || bobs[0].Device.ID == first[0].Device.ID {
		t.Fatalf("bob's import = %+v", bobs[0])
	}
	// Concurrent retries of one batch: one creates, the others find it
	// (or fail cleanly and a later retry finds it) — never two copies.
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.CreateDevices(ctx, bulkRows(a.ID, "e", 20))
		}()
	}
	wg.Wait()
	final := must(r.CreateDevices(ctx, bulkRows(a.ID, "e", 20)))
	if final[0].Created {
		t.Fatal("a batch retried after concurrent imports created again")
	}
	if n := countDevices(t, r, a.ID); n != 72 {
		t.Fatalf("alice has %d devices, want 72", n)
	}
}

// testKeysetPagingStable: pages continue after the last id seen, so rows
// created or deleted between two pages neither shift nor repeat rows, and
// the last page of an owner's devices is found by key among other owners'.
func testKeysetPagingStable(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a, b := user(t, r, "alice", registry.RoleUser), user(t, r, "bob", registry.RoleUser)
	var mine []int64
	for i := range 10 {
		mine = append(mine, must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: fmt.Sprint("a", i)})).ID)
		must(r.CreateDevice(ctx, registry.Device{OwnerID: b.ID, Name: fmt.Sprint("b", i)}))
	}
	f := registry.DeviceFilter{OwnerID: a.ID}
	p1 := must(r.ListDevices(ctx, f, registry.Page{Limit: 4}))
	// Between the pages: delete a row of page 1 and one of page 2, add one.
	must(r.DeleteDevice(ctx, mine[1]))
	must(r.DeleteDevice(ctx, mine[5]))
	added := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "late"}))
	var rest []int64
	for p := (registry.Page{AfterID: p1[len(p1)-1].ID, Limit: 4}); ; {
		ds := must(r.ListDevices(ctx, f, p))
		for _, d := range ds {
			rest = append(rest, d.ID)
		}
		if len(ds) < p.Limit {
			break
		}
		p.AfterID = ds[len(ds)-1].ID
	}
	want := []int64{mine[4], mine[6], mine[7], mine[8], mine[9], added.ID}
	if fmt.Sprint(rest) != fmt.Sprint(want) {
		t.Fatalf("pages after the first = %v, want %v", rest, want)
	}
	last := must(r.ListDevices(ctx, f, registry.Page{AfterID: mine[8], Limit: 100}))
	if len(last) != 2 || last[0].ID != mine[9] || last[1].ID != added.ID {
		t.Fatalf("last page by key = %+v", last)
	}
}
