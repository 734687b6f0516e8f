package command

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

type fixture struct {
	svc        *Service
	reg        *registrysql.DB
	metrics    *prometheus.Registry
	owner, bob authn.Principal
	device     registry.Device
	ctx        context.Context
}

func newFixture(t testing.TB, cfg Config) *fixture {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	alice, _ := reg.CreateUser(ctx, registry.User{Username: "alice", Role: registry.RoleUser, PasswordHash: "h"})
	bob, _ := reg.CreateUser(ctx, registry.User{Username: "bob", Role: registry.RoleUser, PasswordHash: "h"})
	d, err := reg.CreateDevice(ctx, registry.Device{OwnerID: alice.ID, Name: "relay"})
	if err != nil {
		t.Fatal(err)
	}
	m := prometheus.NewRegistry()
	svc := New(slog.New(slog.DiscardHandler), cfg, reg, reg, m)
	go svc.Run(ctx)
	return &fixture{svc: svc, reg: reg, metrics: m, device: d, ctx: ctx,
		owner: authn.Principal{Kind: authn.KindUser, ID: alice.ID}, bob: authn.Principal{Kind: authn.KindUser, ID: bob.ID}}
}

func (f *fixture) as(p authn.Principal) context.Context { return authn.WithPrincipal(f.ctx, p) }

func TestSendCommand_RefusesWithClearErrors(t *testing.T) {
	f := newFixture(t, Config{MaxPayload: 16, MaxPending: 2})
	big, _ := structpb.NewValue(strings.Repeat("x", 40))
	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  *commandv1.SendCommandRequest
		code connect.Code
		msg  string
	}{
		{"reserved name", f.as(f.owner), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "$desired"}, connect.CodeInvalidArgument, "name"},
		{"payload too large", f.as(f.owner), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x", Payload: &commandv1.SendCommandRequest_JsonPayload{JsonPayload: big}}, connect.CodeInvalidArgument, "at most 16"},
		{"ttl too long", f.as(f.owner), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x", Ttl: durationpb.New(365 * 24 * time.Hour)}, connect.CodeInvalidArgument, "ttl"},
		{"another owner's device", f.as(f.bob), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x"}, connect.CodeNotFound, "device not found"},
		{"a device token", f.as(authn.Principal{Kind: authn.KindDevice, ID: f.device.ID}), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x"}, connect.CodePermissionDenied, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.SendCommand(tc.ctx, tc.req)
			if connect.CodeOf(err) != tc.code || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want %v containing %q", err, tc.code, tc.msg)
			}
		})
	}
	// The per-device queue is bounded.
	for i := range 3 {
		_, err := f.svc.SendCommand(f.as(f.owner), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x"})
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("third command: %v", err)
		}
	}
}

func TestSession_ExpiredAndCancelledCommandsAreNeverSent(t *testing.T) {
	f := newFixture(t, Config{})
	ctx := f.as(f.owner)
	short, err := f.svc.SendCommand(ctx, &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "short", Ttl: durationpb.New(time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, _ := f.svc.SendCommand(ctx, &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "cancelled"})
	if _, err := f.svc.CancelCommand(ctx, &commandv1.CancelCommandRequest{Id: cancelled.GetResult().GetId()}); err != nil {
		t.Fatal(err)
	}
	ok, _ := f.svc.SendCommand(ctx, &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "ok"})
	time.Sleep(5 * time.Millisecond)
	sess := f.svc.Attach(f.device.ID, EdgeWS, true)
	defer sess.Close()
	select {
	case c := <-sess.Commands():
		if c.ID != ok.GetResult().GetId() {
			t.Fatalf("pushed %d (%s), want only the live command", c.ID, c.Name)
		}
		if !f.svc.Sent(f.ctx, sess, c) {
			t.Fatal("live command not marked sent")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no command pushed")
	}
	// A command that expired after it was pushed is not written.
	stale := registry.Command{ID: short.GetResult().GetId(), ExpiresAt: time.Now().Add(-time.Second)}
	if f.svc.Sent(f.ctx, sess, stale) {
		t.Fatal("expired command marked sent")
	}
	if _, err := f.svc.CancelCommand(ctx, &commandv1.CancelCommandRequest{Id: cancelled.GetResult().GetId()}); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Fatalf("cancelling twice: %v", err)
	}
}

func TestDeviceCalls_OnlyTheAddressedDevice(t *testing.T) {
	f := newFixture(t, Config{MaxAttributes: 32})
	other, _ := f.reg.CreateDevice(f.ctx, registry.Device{OwnerID: f.owner.ID, Name: "other"})
	c, _ := f.svc.SendCommand(f.as(f.owner), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: "x"})
	id := c.GetResult().GetId()
	if err := f.svc.Respond(f.ctx, other.ID, id, true, nil, ""); !errors.Is(err, ErrUnknownCommand) {
		t.Fatalf("another device answered: %v", err)
	}
	if err := f.svc.Respond(f.ctx, f.device.ID, id, true, []byte("{"), ""); err == nil || !IsDeviceError(err) {
		t.Fatalf("invalid JSON result: %v", err)
	}
	if err := f.svc.Report(f.ctx, f.device.ID, []byte(`[1]`)); !errors.Is(err, ErrNotObject) {
		t.Fatalf("array attributes: %v", err)
	}
	if err := f.svc.Report(f.ctx, f.device.ID, []byte(`{"a":"`+strings.Repeat("x", 64)+`"}`)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("large attributes: %v", err)
	}
	// A queued command answered at once counts as delivered first.
	if err := f.svc.Respond(f.ctx, f.device.ID, id, false, nil, "busy"); err != nil {
		t.Fatal(err)
	}
	got, _ := f.svc.store.GetCommand(f.ctx, id)
	if got.Status != registry.CommandFailed || len(got.History) != 3 || got.History[1].Status != registry.CommandDelivered {
		t.Fatalf("answered queued command: %+v", got)
	}
	if err := f.svc.Respond(f.ctx, f.device.ID, id, true, nil, ""); !errors.Is(err, registry.ErrFailedPrecondition) {
		t.Fatalf("second answer: %v", err)
	}
}

func TestHub_ConnectedGaugeCountsDevicesPerEdge(t *testing.T) {
	f := newFixture(t, Config{})
	g := func(edge string) float64 {
		return gauge(t, f.metrics, "iot_devices_connected", edge)
	}
	a := f.svc.Attach(1, EdgeMQTT, false)
	b := f.svc.Attach(1, EdgeMQTT, false) // the same device twice
	c := f.svc.Attach(2, EdgeMQTT, false)
	w := f.svc.Attach(1, EdgeWS, false)
	if g(EdgeMQTT) != 2 || g(EdgeWS) != 1 || g(EdgeHTTP) != 0 || g(EdgeGRPC) != 0 {
		t.Fatalf("mqtt %v ws %v", g(EdgeMQTT), g(EdgeWS))
	}
	a.Close()
	a.Close() // twice is harmless
	if g(EdgeMQTT) != 2 {
		t.Fatalf("after one of two sessions closed: %v", g(EdgeMQTT))
	}
	b.Close()
	c.Close()
	w.Close()
	if g(EdgeMQTT) != 0 || g(EdgeWS) != 0 {
		t.Fatalf("after all closed: mqtt %v ws %v", g(EdgeMQTT), g(EdgeWS))
	}
	fams, _ := f.metrics.Gather()
	for _, fam := range fams {
		if fam.GetName() == "iot_devices_connected" && len(fam.GetMetric()) != 4 {
			t.Fatalf("iot_devices_connected has %d series, want one per edge", len(fam.GetMetric()))
		}
	}
}

func TestParseAnswer(t *testing.T) {
	for _, tc := range []struct {
		in      string
		success bool
		result  string
		msg     string
	}{
		{`{"status":"succeeded","result":{"on":true}}`, true, `{"on":true}`, ""},
		{`{"status":"failed","message":"busy"}`, false, "", "busy"},
		{`{"relay":"on"}`, true, `{"relay":"on"}`, ""},
		{`ok`, true, `"ok"`, ""},
		{``, true, "", ""},
		{`42`, true, `42`, ""},
	} {
		a := ParseAnswer([]byte(tc.in))
		if a.Success != tc.success || string(a.Result) != tc.result || a.Message != tc.msg {
			t.Errorf("ParseAnswer(%q) = %+v %s", tc.in, a, a.Result)
		}
	}
}

// gauge reads the value of a gauge series by its edge label.
func gauge(t *testing.T, reg *prometheus.Registry, name, edge string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range fams {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "edge" && l.GetValue() == edge {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{edge=%q}", name, edge)
	return 0
}

// countingStore counts the last-seen writes reaching the registry.
type countingStore struct {
	registry.Commands
	mu         sync.Mutex
	single     int
	batches    [][]int64
	batchTimes []time.Time
}

func (c *countingStore) TouchDevice(ctx context.Context, id int64, at time.Time) error {
	c.mu.Lock()
	c.single++
	c.mu.Unlock()
	return c.Commands.TouchDevice(ctx, id, at)
}

func (c *countingStore) TouchDevices(ctx context.Context, ids []int64, at time.Time) error {
	c.mu.Lock()
	c.batches = append(c.batches, slices.Clone(ids))
	c.batchTimes = append(c.batchTimes, at)
	c.mu.Unlock()
	return c.Commands.TouchDevices(ctx, ids, at)
}

// TestHub_TouchesWrittenTogether: devices seen within one flush interval
// get their last-seen time in one TouchDevices write (not one write per
// device), no later than they were seen; a device seen again within
// touchEvery is not written again.
func TestHub_TouchesWrittenTogether(t *testing.T) {
	f := newFixture(t, Config{})
	var ids []int64
	for i := range 3 {
		d, err := f.reg.CreateDevice(f.ctx, registry.Device{OwnerID: f.owner.ID, Name: "t" + strconv.Itoa(i)})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, d.ID)
	}
	store := &countingStore{Commands: f.reg}
	h := newHub(slog.New(slog.DiscardHandler), store, nil)
	go h.runState(f.ctx)
	before := time.Now()
	for _, id := range ids {
		h.touch(id)
		h.touch(id) // again at once: within touchEvery, not written twice
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		store.mu.Lock()
		n := len(store.batches)
		store.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no last-seen write within 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(touchFlush + 200*time.Millisecond) // a second flush would have come by now
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.single != 0 || len(store.batches) != 1 || len(store.batches[0]) != 3 {
		t.Fatalf("%d single writes and batches %v, want one batch of the 3 devices", store.single, store.batches)
	}
	for _, id := range ids {
		st, err := f.reg.GetDeviceState(f.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastSeen.Before(before.Truncate(time.Microsecond)) || st.LastSeen.After(time.Now()) {
			t.Fatalf("device %d last seen %v, want between %v and now", id, st.LastSeen, before)
		}
	}
}

// gatedStore holds every DeviceConnected/DeviceDisconnected until gate is
// closed, and counts them.
type gatedStore struct {
	registry.Commands
	gate              chan struct{}
	connects, discons atomic.Int64
	mu                sync.Mutex
	connected         map[int64]bool
	overtaken         int // disconnects applied before their connect
}

func (g *gatedStore) DeviceConnected(ctx context.Context, id int64, edge string, at time.Time) error {
	<-g.gate
	g.mu.Lock()
	g.connected[id] = true
	g.mu.Unlock()
	g.connects.Add(1)
	return nil
}

func (g *gatedStore) DeviceDisconnected(ctx context.Context, id int64, at time.Time) error {
	<-g.gate
	g.mu.Lock()
	if !g.connected[id] {
		g.overtaken++
	}
	g.mu.Unlock()
	g.discons.Add(1)
	return nil
}

// TestHub_DisconnectStormDoesNotWaitForTheRegistry: 10,000 devices
// connecting and disconnecting while the registry answers nothing all
// return at once (a gateway's shared reader detaches sessions: waiting
// there stalled every device's reads), and every write is applied, in
// order, once the registry answers.
func TestHub_DisconnectStormDoesNotWaitForTheRegistry(t *testing.T) {
	f := newFixture(t, Config{})
	store := &gatedStore{Commands: f.reg, gate: make(chan struct{}), connected: map[int64]bool{}}
	h := newHub(slog.New(slog.DiscardHandler), store, nil)
	go h.runState(f.ctx)
	const n = 10000
	done := make(chan struct{})
	go func() {
		for i := range n {
			h.detach(h.attach(int64(i+1), EdgeMQTT, false, nil))
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("attach/detach still waiting on a registry that does not answer")
	}
	close(store.gate)
	deadline := time.Now().Add(30 * time.Second)
	for store.connects.Load()+store.discons.Load() < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connects and %d disconnects applied, want %d each", store.connects.Load(), store.discons.Load(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if store.overtaken > 0 {
		t.Fatalf("%d disconnects applied before their device's connect", store.overtaken)
	}
}
