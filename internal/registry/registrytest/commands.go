package registrytest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

func commandsOf(t *testing.T, r registry.Registry) registry.Commands {
	t.Helper()
	c, ok := r.(registry.Commands)
	if !ok {
		t.Fatal("the backend does not keep commands (registry.Commands)")
	}
	return c
}

func statuses(c registry.Command) []registry.CommandStatus {
	var out []registry.CommandStatus
	for _, e := range c.History {
		out = append(out, e.Status)
	}
	return out
}

func testCommandLifecycle(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	cs := commandsOf(t, r)
	u := user(t, r, "cmdowner", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"}))
	other := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "o"}))
	now := time.Now().Truncate(time.Microsecond)
	enq := func(name string, ttl time.Duration) registry.Command {
		return must(cs.EnqueueCommand(ctx, registry.Command{DeviceID: d.ID, Name: name, Payload: []byte(`{"n":"` + name + `"}`),
			CreatedBy: u.ID, CreatedAt: now, ExpiresAt: now.Add(ttl)}, 3))
	}
	a, b := enq("a", time.Hour), enq("b", time.Hour)
	stale := enq("stale", time.Millisecond)
	if a.ID == 0 || a.Status != registry.CommandQueued || len(a.History) != 1 || !a.CreatedAt.Equal(now) {
		t.Fatalf("enqueued %+v", a)
	}
	// The device's queue is bounded; other devices are not affected.
	_, err := cs.EnqueueCommand(ctx, registry.Command{DeviceID: d.ID, Name: "x", Payload: []byte{}, ExpiresAt: now.Add(time.Hour)}, 3)
	wantErr(t, err, registry.ErrQueueFull)
	must(cs.EnqueueCommand(ctx, registry.Command{DeviceID: other.ID, Name: "x", Payload: []byte{1}, Binary: true, ExpiresAt: now.Add(time.Hour)}, 3))

	// Pending: not expired, oldest first.
	p := must(cs.PendingCommands(ctx, d.ID, now.Add(time.Second), 10))
	if len(p) != 2 || p[0].ID != a.ID || p[1].ID != b.ID {
		t.Fatalf("pending %+v", p)
	}
	// Transitions are conditional and recorded.
	sent := must(cs.UpdateCommand(ctx, a.ID, registry.CommandUpdate{To: registry.CommandSent, From: []registry.CommandStatus{registry.CommandQueued}, At: now, Edge: "mqtt"}))
	if sent.Status != registry.CommandSent || sent.Edge != "mqtt" {
		t.Fatalf("sent %+v", sent)
	}
	_, err = cs.UpdateCommand(ctx, a.ID, registry.CommandUpdate{To: registry.CommandSucceeded, From: []registry.CommandStatus{registry.CommandDelivered}, At: now})
	wantErr(t, err, registry.ErrFailedPrecondition)
	must(cs.UpdateCommand(ctx, a.ID, registry.CommandUpdate{To: registry.CommandDelivered, From: []registry.CommandStatus{registry.CommandSent}, At: now}))
	done := must(cs.UpdateCommand(ctx, a.ID, registry.CommandUpdate{To: registry.CommandSucceeded, From: []registry.CommandStatus{registry.CommandDelivered}, At: now, Result: []byte(`{"ok":true}`)}))
	if string(done.Result) != `{"ok":true}` || done.Edge != "mqtt" {
		t.Fatalf("answered %+v", done)
	}
	got := must(cs.GetCommand(ctx, a.ID))
	if want := []registry.CommandStatus{registry.CommandQueued, registry.CommandSent, registry.CommandDelivered, registry.CommandSucceeded}; !slices.Equal(statuses(got), want) {
		t.Fatalf("history %v, want %v", statuses(got), want)
	}
	if string(got.Payload) != `{"n":"a"}` || got.Name != "a" || got.CreatedBy != u.ID {
		t.Fatalf("stored %+v", got)
	}
	// Expiry takes what is not final and past its time, once.
	exp := must(cs.ExpireCommands(ctx, now.Add(time.Second), 100))
	if len(exp) != 1 || exp[0].ID != stale.ID {
		t.Fatalf("expired %+v", exp)
	}
	if again := must(cs.ExpireCommands(ctx, now.Add(time.Second), 100)); len(again) != 0 {
		t.Fatalf("expired twice: %+v", again)
	}
	if n := must(cs.CountPendingCommands(ctx)); n != 2 { // b and the other device's
		t.Fatalf("pending count %d", n)
	}
	// Listing pages by id.
	page := must(cs.ListCommands(ctx, d.ID, registry.Page{Limit: 2}))
	rest := must(cs.ListCommands(ctx, d.ID, registry.Page{AfterID: page[1].ID, Limit: 2}))
	if len(page) != 2 || len(rest) != 1 || rest[0].ID != stale.ID || len(rest[0].History) != 2 {
		t.Fatalf("pages %+v %+v", page, rest)
	}
	_, err = cs.GetCommand(ctx, 999999)
	wantErr(t, err, registry.ErrNotFound)
	// Deleting the device deletes its commands.
	must(r.DeleteDevice(ctx, d.ID))
	_, err = cs.GetCommand(ctx, b.ID)
	wantErr(t, err, registry.ErrNotFound)
}

// testTouchDevices: one TouchDevices call moves the last-seen time of every
// device named forward (never back), skips ids of devices that do not
// exist, and announces each device to watchers.
func testTouchDevices(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	cs := commandsOf(t, r)
	u := user(t, r, "touchowner", registry.RoleUser)
	a := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "a"}))
	b := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "b"}))
	gone := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "gone"}))
	if _, err := r.DeleteDevice(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().Truncate(time.Microsecond)
	if err := cs.TouchDevice(ctx, b.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	changed := make(chan int64, 64)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go cs.WatchChanges(wctx, func(id int64) { changed <- id })
	time.Sleep(50 * time.Millisecond) // the watcher subscribes
	if err := cs.TouchDevices(ctx, []int64{a.ID, gone.ID, b.ID}, t0); err != nil {
		t.Fatalf("touch with a deleted device's id: %v", err)
	}
	if s := must(cs.GetDeviceState(ctx, a.ID)); !s.LastSeen.Equal(t0) {
		t.Fatalf("device a last seen %v, want %v", s.LastSeen, t0)
	}
	if s := must(cs.GetDeviceState(ctx, b.ID)); !s.LastSeen.Equal(t0.Add(time.Hour)) {
		t.Fatalf("device b last seen %v: moved back from %v", s.LastSeen, t0.Add(time.Hour))
	}
	seen := map[int64]bool{}
	deadline := time.After(10 * time.Second)
	for !seen[a.ID] || !seen[b.ID] {
		select {
		case id := <-changed:
			seen[id] = true
		case <-deadline:
			t.Fatalf("watchers told of %v, want devices %d and %d", seen, a.ID, b.ID)
		}
	}
	if err := cs.TouchDevices(ctx, nil, t0); err != nil {
		t.Fatal(err)
	}
}

func testDeviceState(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	cs := commandsOf(t, r)
	u := user(t, r, "stateowner", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"}))
	if s := must(cs.GetDeviceState(ctx, d.ID)); s.DeviceID != d.ID || s.Connections != 0 || !s.LastSeen.IsZero() {
		t.Fatalf("unknown state %+v", s)
	}
	t0 := time.Now().Truncate(time.Microsecond)
	changed := make(chan int64, 16)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go cs.WatchChanges(wctx, func(id int64) { changed <- id })
	time.Sleep(50 * time.Millisecond) // the watcher subscribes

	if err := cs.DeviceConnected(ctx, d.ID, "mqtt", t0); err != nil {
		t.Fatal(err)
	}
	if err := cs.DeviceConnected(ctx, d.ID, "ws", t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	s := must(cs.GetDeviceState(ctx, d.ID))
	if s.Connections != 2 || s.Edge != "mqtt" || !s.OnlineSince.Equal(t0) {
		t.Fatalf("two connections %+v", s)
	}
	if err := cs.DeviceDisconnected(ctx, d.ID, t0.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if s := must(cs.GetDeviceState(ctx, d.ID)); s.Connections != 1 || s.Edge != "mqtt" {
		t.Fatalf("one left %+v", s)
	}
	must(cs.SetReportedAttributes(ctx, d.ID, []byte(`{"fw":"1"}`), t0.Add(3*time.Second)))
	s = must(cs.SetDesiredAttributes(ctx, d.ID, []byte(`{"led":true}`), t0))
	s = must(cs.SetDesiredAttributes(ctx, d.ID, []byte(`{"led":false}`), t0))
	if s.DesiredVersion != 2 || string(s.Desired) != `{"led":false}` || string(s.Reported) != `{"fw":"1"}` || !s.LastSeen.Equal(t0.Add(3*time.Second)) {
		t.Fatalf("attributes %+v", s)
	}
	if err := cs.ResetConnections(ctx); err != nil {
		t.Fatal(err)
	}
	if s := must(cs.GetDeviceState(ctx, d.ID)); s.Connections != 0 || s.Edge != "" || !s.OnlineSince.IsZero() {
		t.Fatalf("after reset %+v", s)
	}
	// The watcher may have subscribed after the writes above: write until
	// it reports one.
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case id := <-changed:
			if id != d.ID && id != 0 {
				t.Fatalf("change of device %d", id)
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("WatchChanges saw no change")
		}
		if err := cs.TouchDevice(ctx, d.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}
