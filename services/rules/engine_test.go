package rules

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
)

type fixture struct {
	t      *testing.T
	reg    *registrysql.DB
	st     *storeembedded.Store
	owner  registry.User
	device registry.Device
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(dir, "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	st, err := storeembedded.Open(ctx, slog.New(slog.DiscardHandler), storeembedded.Config{Path: filepath.Join(dir, "readings.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	u, err := reg.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "x"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := reg.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, reg: reg, st: st, owner: u, device: d}
}

func (f *fixture) sensor(name string, typ registry.ValueType) registry.Sensor {
	s, err := f.reg.CreateSensor(context.Background(), registry.Sensor{DeviceID: f.device.ID, Name: name, Type: typ, Path: name})
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) rule(s registry.Sensor, kind string, sp Spec, webhook string) registry.Rule {
	b, _ := json.Marshal(sp)
	r, err := f.reg.CreateRule(context.Background(), registry.Rule{OwnerID: f.owner.ID, Name: kind, SensorID: s.ID, DeviceID: f.device.ID, Kind: kind, Spec: b, WebhookURL: webhook, WebhookSecret: "s3cret"})
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

func (f *fixture) engine(shared bool) *Engine {
	e := NewEngine(slog.New(slog.DiscardHandler), f.reg, f.reg, f.st, EngineConfig{Shared: shared}, nil)
	if err := e.Load(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	return e
}

func doubles(s registry.Sensor, start int64, vs ...float64) []store.Reading {
	var out []store.Reading
	for i, v := range vs {
		out = append(out, store.Reading{DeviceID: s.DeviceID, SensorID: s.ID, TimeNS: start + int64(i)*int64(time.Second), Value: store.Value{Kind: store.KindDouble, Double: v}, Protocol: "http"})
	}
	return out
}

// feed stores rs and lets e observe them, as the pipeline does.
func (f *fixture) feed(e *Engine, rs []store.Reading) {
	f.t.Helper()
	ctx := context.Background()
	if err := f.st.Write(ctx, rs); err != nil {
		f.t.Fatal(err)
	}
	if err := e.Observe(ctx, rs); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) events() []registry.AlertEvent {
	f.t.Helper()
	evs, err := f.reg.AlertEvents(context.Background(), 0, 0, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	return evs
}

func (f *fixture) alerts(ruleID int64) []registry.Alert {
	f.t.Helper()
	as, err := f.reg.ListAlerts(context.Background(), registry.AlertFilter{RuleID: ruleID, Limit: 1000})
	if err != nil {
		f.t.Fatal(err)
	}
	return as
}

func eventNames(evs []registry.AlertEvent) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.Event)
	}
	return out
}

func TestEngine_ThresholdFiresOncePerCrossingAcrossReplaysAndRestarts(t *testing.T) {
	f := newFixture(t)
	s := f.sensor("temp", registry.TypeDouble)
	ru := f.rule(s, KindThreshold, Spec{Op: OpAbove, High: 10}, "")
	e := f.engine(false)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	batch := doubles(s, t0, 5, 11, 12, 4, 13, 14)
	f.feed(e, batch)
	if got := eventNames(f.events()); len(got) != 3 || got[0] != "fired" || got[1] != "resolved" || got[2] != "fired" {
		t.Fatalf("events %v, want fired resolved fired", got)
	}
	// The bus redelivers the batch (crash before the offset commit) to
	// this process, and to a restarted one: nothing fires again.
	f.feed(e, batch)
	f.feed(f.engine(false), batch)
	f.feed(f.engine(true), batch)
	if n := len(f.events()); n != 3 {
		t.Fatalf("%d events after replays, want 3", n)
	}
	as := f.alerts(ru.ID)
	if len(as) != 2 {
		t.Fatalf("alerts %+v", as)
	}
	var first registry.Alert
	for _, a := range as {
		if a.FireNS == t0+int64(time.Second) {
			first = a
		}
	}
	if first.State != "resolved" || first.Value != "11" || first.ResolveValue != "4" || first.ResolveNS != t0+3*int64(time.Second) {
		t.Fatalf("first alert %+v", first)
	}
	// A restarted engine continues from the stored state: the next
	// non-violating reading resolves the open alert.
	f.feed(f.engine(false), doubles(s, t0+10*int64(time.Second), 3))
	if got := eventNames(f.events()); len(got) != 4 || got[3] != "resolved" {
		t.Fatalf("events %v", got)
	}
}

func TestEngine_ThresholdWithDurationFiresAfterHolding(t *testing.T) {
	f := newFixture(t)
	s := f.sensor("freezer", registry.TypeDouble)
	ru := f.rule(s, KindThreshold, Spec{Op: OpAbove, High: -15, DurationNS: int64(5 * time.Minute)}, "")
	e := f.engine(false)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	m := int64(time.Minute)
	at := func(off int64, v float64) store.Reading {
		return store.Reading{DeviceID: s.DeviceID, SensorID: s.ID, TimeNS: t0 + off, Value: store.Value{Kind: store.KindDouble, Double: v}}
	}
	// Above for 3 minutes, back below: nothing. Then above for 5 minutes: fires once.
	f.feed(e, []store.Reading{at(0, -10), at(3*m, -12), at(4*m, -20), at(10*m, -10), at(12*m, -11)})
	if n := len(f.alerts(ru.ID)); n != 0 {
		t.Fatalf("%d alerts before the duration passed", n)
	}
	f.feed(e, []store.Reading{at(15*m, -9), at(16*m, -9)})
	as := f.alerts(ru.ID)
	if len(as) != 1 || as[0].FireNS != t0+15*m || as[0].State != "firing" {
		t.Fatalf("alerts %+v, want one fired at +15m", as)
	}
}

func TestEngine_RateOfChangeUsesThePreviousStoredReading(t *testing.T) {
	f := newFixture(t)
	s := f.sensor("pressure", registry.TypeDouble)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	// Stored before the rule existed: the engine finds it as the previous value.
	if err := f.st.Write(context.Background(), doubles(s, t0, 100)); err != nil {
		t.Fatal(err)
	}
	ru := f.rule(s, KindRate, Spec{MaxPerSecond: 5}, "")
	e := f.engine(false)
	f.feed(e, doubles(s, t0+int64(time.Second), 110, 112, 113)) // 10/s, 2/s, 1/s
	as := f.alerts(ru.ID)
	if len(as) != 1 || as[0].Value != "110" || as[0].State != "resolved" || as[0].ResolveValue != "112" {
		t.Fatalf("alerts %+v", as)
	}
}

func TestEngine_EqualsOnStringsAndBooleans(t *testing.T) {
	f := newFixture(t)
	door := f.sensor("door", registry.TypeBoolean)
	mode := f.sensor("mode", registry.TypeString)
	yes, fault := true, "FAULT"
	rDoor := f.rule(door, KindEquals, Spec{EqBool: &yes}, "")
	rMode := f.rule(mode, KindEquals, Spec{EqString: &fault}, "")
	e := f.engine(false)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	var rs []store.Reading
	for i, b := range []bool{false, true, true, false} {
		rs = append(rs, store.Reading{DeviceID: f.device.ID, SensorID: door.ID, TimeNS: t0 + int64(i), Value: store.Value{Kind: store.KindBool, Bool: b}})
	}
	for i, v := range []string{"OK", "FAULT", "fault", "FAULT"} {
		rs = append(rs, store.Reading{DeviceID: f.device.ID, SensorID: mode.ID, TimeNS: t0 + int64(i), Value: store.Value{Kind: store.KindString, Str: v}})
	}
	f.feed(e, rs)
	if as := f.alerts(rDoor.ID); len(as) != 1 || as[0].State != "resolved" || as[0].Value != "true" {
		t.Fatalf("door alerts %+v", as)
	}
	if as := f.alerts(rMode.ID); len(as) != 2 {
		t.Fatalf("mode alerts %+v, want 2 (FAULT twice, case-sensitive)", as)
	}
}

// TestEngine_TwoProcessesSharingSensorsFireOnce: two engines (pipeline
// processes in one consumer group) see overlapping batches of one sensor, as
// around a rebalance: each crossing fires exactly once.
func TestEngine_TwoProcessesSharingSensorsFireOnce(t *testing.T) {
	f := newFixture(t)
	s := f.sensor("temp", registry.TypeDouble)
	ru := f.rule(s, KindThreshold, Spec{Op: OpAbove, High: 10}, "")
	a, b := f.engine(true), f.engine(true)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	vals := []float64{1, 20, 21, 2, 3, 30, 1, 40, 41, 42, 0}
	all := doubles(s, t0, vals...)
	f.feed(a, all[:5])
	f.feed(b, all[3:8]) // b took over, redelivered from 3
	f.feed(a, all[6:])  // back to a, redelivered from 6
	f.feed(b, all)      // everything again
	as := f.alerts(ru.ID)
	if len(as) != 3 {
		t.Fatalf("%d alerts, want 3 crossings: %+v", len(as), as)
	}
	for _, al := range as {
		if al.State != "resolved" {
			t.Fatalf("alert not resolved: %+v", al)
		}
	}
	if n := len(f.events()); n != 6 {
		t.Fatalf("%d events, want 6", n)
	}
}

func TestEngine_AbsenceFiresOnSilenceAndResolvesOnTheNextReading(t *testing.T) {
	f := newFixture(t)
	s := f.sensor("heartbeat", registry.TypeLong)
	ctx := context.Background()
	b, _ := json.Marshal(Spec{AbsenceSeconds: 30})
	ru, err := f.reg.CreateRule(ctx, registry.Rule{OwnerID: f.owner.ID, Name: "silent", DeviceID: f.device.ID, Kind: KindAbsence, Spec: b})
	if err != nil {
		t.Fatal(err)
	}
	e1, e2 := f.engine(true), f.engine(true)
	now := time.Now()
	last := now.Add(-time.Minute).UnixNano()
	if err := f.st.Write(ctx, []store.Reading{{DeviceID: f.device.ID, SensorID: s.ID, TimeNS: last, ReceiveTimeNS: last, Value: store.Value{Kind: store.KindLong, Long: 1}}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Engine{e1, e2, e1} { // two processes check the same rule
		if err := e.CheckAbsence(ctx); err != nil {
			t.Fatal(err)
		}
	}
	as := f.alerts(ru.ID)
	if len(as) != 1 || as[0].State != "firing" || as[0].FireNS != last+30*int64(time.Second) {
		t.Fatalf("alerts %+v", as)
	}
	if err := f.st.Write(ctx, []store.Reading{{DeviceID: f.device.ID, SensorID: s.ID, TimeNS: now.UnixNano(), ReceiveTimeNS: now.UnixNano(), Value: store.Value{Kind: store.KindLong, Long: 2}}}); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*Engine{e2, e1} {
		if err := e.CheckAbsence(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if as := f.alerts(ru.ID); len(as) != 1 || as[0].State != "resolved" {
		t.Fatalf("alerts %+v", as)
	}
	if got := eventNames(f.events()); len(got) != 2 {
		t.Fatalf("events %v", got)
	}
}

// TestNotifier_RetriesWithBackoffSignedAndRecorded: the receiver refuses the
// first two attempts; the third is delivered, every attempt is recorded and
// every request carries a valid HMAC-SHA256 signature.
func TestNotifier_RetriesWithBackoffSignedAndRecorded(t *testing.T) {
	f := newFixture(t)
	var mu sync.Mutex
	var times []time.Time
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		ts, _ := strconv.ParseInt(r.Header.Get(SignatureTimestampHeader), 10, 64)
		mu.Lock()
		defer mu.Unlock()
		if !Verify("s3cret", ts, body, r.Header.Get(SignatureHeader)) {
			bad = append(bad, r.Header.Get(SignatureHeader))
		}
		var p Payload
		if err := json.Unmarshal(body, &p); err != nil || p.Event != "fired" || p.Alert.Value != "11" {
			bad = append(bad, string(body))
		}
		times = append(times, time.Now())
		if len(times) <= 2 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	s := f.sensor("temp", registry.TypeDouble)
	f.rule(s, KindThreshold, Spec{Op: OpAbove, High: 10}, srv.URL+"/hook")
	e := f.engine(false)
	n := NewNotifier(slog.New(slog.DiscardHandler), f.reg, NotifierConfig{Backoff: 100 * time.Millisecond, Poll: 20 * time.Millisecond, AllowNets: loopback}, nil, nil)
	e.OnDeliveries(n.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	f.feed(e, doubles(s, time.Now().UnixNano(), 11))
	as := f.alerts(0)
	deadline := time.Now().Add(10 * time.Second)
	var at []registry.DeliveryAttempt
	for time.Now().Before(deadline) {
		var err error
		if at, err = f.reg.DeliveryAttempts(context.Background(), as[0].ID); err != nil {
			t.Fatal(err)
		}
		if len(at) == 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(at) != 3 || at[0].OK || at[1].OK || !at[2].OK || at[0].StatusCode != 503 || at[2].StatusCode != 204 {
		t.Fatalf("attempts %+v", at)
	}
	if len(bad) > 0 {
		t.Fatalf("bad signatures or bodies: %v", bad)
	}
	if g1, g2 := times[1].Sub(times[0]), times[2].Sub(times[1]); g1 < 100*time.Millisecond || g2 < 200*time.Millisecond {
		t.Fatalf("gaps %v %v: want backoff 100ms then 200ms", g1, g2)
	}
}

// TestNotifier_RuleCommandQueuedOncePerFiring: a rule with a command queues
// it to its device each time it fires (not when it resolves), once per
// crossing even when the batch is replayed.
func TestNotifier_RuleCommandQueuedOncePerFiring(t *testing.T) {
	f := newFixture(t)
	s := f.sensor("temp", registry.TypeDouble)
	b, _ := json.Marshal(Spec{Op: OpAbove, High: 10, Command: &CommandSpec{Name: "cool", Payload: json.RawMessage(`{"level":3}`)}})
	ru, err := f.reg.CreateRule(context.Background(), registry.Rule{OwnerID: f.owner.ID, Name: "cool it", SensorID: s.ID, DeviceID: f.device.ID, Kind: KindThreshold, Spec: b})
	if err != nil {
		t.Fatal(err)
	}
	e := f.engine(false)
	n := NewNotifier(slog.New(slog.DiscardHandler), f.reg, NotifierConfig{Poll: 20 * time.Millisecond}, nil, nil)
	e.OnDeliveries(n.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	batch := doubles(s, time.Now().UnixNano(), 11, 5, 12)
	f.feed(e, batch)
	f.feed(f.engine(false), batch) // replayed after a restart
	var cmds []registry.Command
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if cmds, err = f.reg.ListCommands(context.Background(), f.device.ID, registry.Page{Limit: 10}); err != nil {
			t.Fatal(err)
		}
		if len(cmds) >= 2 {
			break
		}
	}
	time.Sleep(200 * time.Millisecond)
	cmds, _ = f.reg.ListCommands(context.Background(), f.device.ID, registry.Page{Limit: 10})
	if len(cmds) != 2 || cmds[0].Name != "cool" || string(cmds[0].Payload) != `{"level":3}` || cmds[0].CreatedBy != f.owner.ID {
		t.Fatalf("commands %+v, want 2 (one per firing)", cmds)
	}
	if as := f.alerts(ru.ID); len(as) != 2 {
		t.Fatalf("alerts %+v", as)
	}
}
