package command

import (
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recorder is a DeliverFunc that marks each command sent and records its
// id, as an edge that writes it would.
type recorder struct {
	f   *fixture
	mu  sync.Mutex
	ids []int64
}

func (r *recorder) deliver(s *Session, c registry.Command) bool {
	if !r.f.svc.Sent(r.f.ctx, s, c) {
		return true
	}
	r.mu.Lock()
	r.ids = append(r.ids, c.ID)
	r.mu.Unlock()
	return true
}

func (r *recorder) got() []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ids)
}

func (f *fixture) send(t *testing.T, name string) int64 {
	t.Helper()
	res, err := f.svc.SendCommand(f.as(f.owner), &commandv1.SendCommandRequest{DeviceId: f.device.ID, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return res.GetResult().GetId()
}

func (f *fixture) status(t *testing.T, id int64) registry.CommandStatus {
	t.Helper()
	c, err := f.reg.GetCommand(f.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return c.Status
}

func TestAttachFunc_IdleSessionsHoldNoGoroutine(t *testing.T) {
	f := newFixture(t, Config{})
	const n = 200
	before := testenv.SettledGoroutines()
	sessions := make([]*Session, n)
	for i := range sessions {
		sessions[i] = f.svc.AttachFunc(int64(1000+i), EdgeWS, true, func(*Session, registry.Command) bool { return true })
	}
	after := testenv.SettledGoroutines()
	for _, s := range sessions {
		s.Close()
	}
	if after-before >= n/10 {
		t.Fatalf("%d idle sessions hold %d goroutines (%d before, %d after)", n, after-before, before, after)
	}
}

func TestAttachFunc_CommandsGoInOrderToTheNewestReadySession(t *testing.T) {
	f := newFixture(t, Config{})
	older, newest, unready := &recorder{f: f}, &recorder{f: f}, &recorder{f: f}
	for _, s := range []*Session{
		f.svc.AttachFunc(f.device.ID, EdgeWS, true, older.deliver),
		f.svc.AttachFunc(f.device.ID, EdgeGRPC, true, newest.deliver),
		f.svc.AttachFunc(f.device.ID, EdgeMQTT, false, unready.deliver),
	} {
		defer s.Close()
	}
	var want []int64
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		want = append(want, f.send(t, name))
	}
	waitFor(t, "five commands delivered", func() bool { return len(newest.got()) >= len(want) })
	time.Sleep(50 * time.Millisecond) // nothing more comes
	if got := newest.got(); !slices.Equal(got, want) {
		t.Fatalf("newest ready session got %v, want %v", got, want)
	}
	if len(older.got()) != 0 || len(unready.got()) != 0 {
		t.Fatalf("older session got %v, unready one %v", older.got(), unready.got())
	}
	for _, id := range want {
		if st := f.status(t, id); st != registry.CommandSent {
			t.Fatalf("command %d is %s, want sent", id, st)
		}
	}
}

// TestAttachFunc_NoDeliveryAfterCloseReturns closes sessions while their
// commands are being delivered (run it with -race).
func TestAttachFunc_NoDeliveryAfterCloseReturns(t *testing.T) {
	f := newFixture(t, Config{})
	for _, name := range []string{"a", "b", "c", "d"} {
		f.send(t, name) // never marked sent: every session gets them all
	}
	var calls, late atomic.Int32
	for round := range 60 {
		var closed atomic.Bool
		s := f.svc.AttachFunc(f.device.ID, EdgeWS, true, func(*Session, registry.Command) bool {
			calls.Add(1)
			if closed.Load() {
				late.Add(1)
			}
			time.Sleep(300 * time.Microsecond) // a write
			if closed.Load() {
				late.Add(1)
			}
			return true
		})
		time.Sleep(time.Duration(round%20) * 250 * time.Microsecond)
		s.Close()
		closed.Store(true)
	}
	time.Sleep(100 * time.Millisecond) // any dispatcher still running ends
	if late.Load() > 0 {
		t.Fatalf("deliver ran after Close returned (%d times)", late.Load())
	}
	if calls.Load() == 0 {
		t.Fatal("no command was delivered: the test raced nothing")
	}
}

func TestAttachFunc_FailedDeliveryLeavesTheCommandQueued(t *testing.T) {
	f := newFixture(t, Config{})
	failed := &recorder{f: f}
	broken := f.svc.AttachFunc(f.device.ID, EdgeWS, true, func(_ *Session, c registry.Command) bool {
		failed.mu.Lock()
		failed.ids = append(failed.ids, c.ID)
		failed.mu.Unlock()
		return false
	})
	defer broken.Close()
	a, b := f.send(t, "a"), f.send(t, "b")
	waitFor(t, "a delivery attempt", func() bool { return len(failed.got()) >= 1 })
	time.Sleep(50 * time.Millisecond)
	if got := failed.got(); !slices.Equal(got, []int64{a}) {
		t.Fatalf("failing deliver got %v, want [%d] alone (the rest waits)", got, a)
	}
	if f.status(t, a) != registry.CommandQueued || f.status(t, b) != registry.CommandQueued {
		t.Fatalf("after a failed delivery: %s, %s; want both queued", f.status(t, a), f.status(t, b))
	}
	// The failed command is not remembered as pushed to the session: made
	// ready again, the session is offered it again.
	broken.Ready()
	waitFor(t, "a retry", func() bool { return len(failed.got()) >= 2 })
	if got := failed.got(); !slices.Equal(got, []int64{a, a}) {
		t.Fatalf("failing deliver got %v, want [%d %d]", got, a, a)
	}

	next := &recorder{f: f}
	s := f.svc.AttachFunc(f.device.ID, EdgeGRPC, true, next.deliver)
	defer s.Close()
	waitFor(t, "both commands on the next session", func() bool { return len(next.got()) >= 2 })
	if got := next.got(); !slices.Equal(got, []int64{a, b}) {
		t.Fatalf("next session got %v, want %v", got, []int64{a, b})
	}
}

func TestAttachFunc_OlderSessionTakesOverFromAFailedOne(t *testing.T) {
	f := newFixture(t, Config{})
	older := &recorder{f: f}
	s := f.svc.AttachFunc(f.device.ID, EdgeMQTT, true, older.deliver)
	defer s.Close()
	var fails atomic.Int32
	broken := f.svc.AttachFunc(f.device.ID, EdgeWS, true, func(*Session, registry.Command) bool {
		fails.Add(1)
		return false
	})
	defer broken.Close()
	id := f.send(t, "a")
	waitFor(t, "the older session to get the command", func() bool { return len(older.got()) == 1 })
	if older.got()[0] != id || fails.Load() != 1 {
		t.Fatalf("older session got %v after %d failed deliveries, want [%d] after 1", older.got(), fails.Load(), id)
	}
}
