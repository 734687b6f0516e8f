package registrytest

import (
	"context"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// testRules checks the rules contract: a state change is written once per
// version (two processes applying the same transition change it once), an
// alert id is raised once, events and deliveries follow the changes that
// happened, deliveries are leased to one worker at a time.
func testRules(t *testing.T, reg registry.Registry) {
	ctx := context.Background()
	r, ok := reg.(registry.Rules)
	if !ok {
		t.Fatalf("%T does not implement registry.Rules", reg)
	}
	u := user(t, reg, "ruler", registry.RoleUser)
	d := must(reg.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "fridge"}))
	s := must(reg.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: "temp", Type: registry.TypeDouble, Path: "temp"}))
	v0 := must(r.RulesVersion(ctx))
	ru := must(r.CreateRule(ctx, registry.Rule{OwnerID: u.ID, Name: "hot", SensorID: s.ID, DeviceID: d.ID, Kind: "threshold", Spec: []byte(`{"op":1}`), WebhookURL: "http://127.0.0.1:1/h", WebhookSecret: "k"}))
	if ru.ID == 0 || string(ru.Spec) != `{"op":1}` || ru.SensorID != s.ID || ru.WebhookSecret != "k" {
		t.Fatalf("created %+v", ru)
	}
	if v1 := must(r.RulesVersion(ctx)); v1 == v0 {
		t.Fatal("rules version unchanged by a create")
	}
	if got := must(r.ListRules(ctx, u.ID, 0, registry.Page{Limit: 10})); len(got) != 1 || got[0].ID != ru.ID {
		t.Fatalf("list %+v", got)
	}
	if got := must(r.ListRules(ctx, u.ID+1000, 0, registry.Page{Limit: 10})); len(got) != 0 {
		t.Fatalf("another owner's list %+v", got)
	}

	fire := registry.Transition{
		State:      registry.RuleState{RuleID: ru.ID, SensorID: s.ID, Version: 0, State: []byte(`{"firing":true}`)},
		Fire:       &registry.Alert{ID: "a1", RuleID: ru.ID, OwnerID: u.ID, RuleName: "hot", SensorID: s.ID, DeviceID: d.ID, Value: "7.5", FireNS: 100},
		WebhookURL: ru.WebhookURL,
	}
	if got := must(r.ApplyTransitions(ctx, []registry.Transition{fire, fire})); !got[0] || got[1] {
		t.Fatalf("same transition twice applied %v, want [true false]", got)
	}
	st := must(r.RuleStates(ctx, []int64{s.ID}))
	if len(st) != 1 || st[0].Version != 1 || string(st[0].State) != `{"firing":true}` {
		t.Fatalf("states %+v", st)
	}
	// Another process computed the same firing from the same version: not applied.
	if got := must(r.ApplyTransitions(ctx, []registry.Transition{fire})); got[0] {
		t.Fatal("stale transition applied")
	}
	// A transition from the current version raising an existing alert id: state moves, no second event.
	dup := fire
	dup.State.Version = 1
	if got := must(r.ApplyTransitions(ctx, []registry.Transition{dup})); !got[0] {
		t.Fatal("transition from the current version refused")
	}
	evs := must(r.AlertEvents(ctx, u.ID, 0, 10))
	if len(evs) != 1 || evs[0].Event != "fired" || evs[0].AlertID != "a1" {
		t.Fatalf("events %+v", evs)
	}
	resolve := registry.Transition{
		State:     registry.RuleState{RuleID: ru.ID, SensorID: s.ID, Version: 2, State: []byte(`{}`)},
		ResolveID: "a1", ResolveNS: 200, ResolveValue: "3", WebhookURL: ru.WebhookURL,
	}
	if got := must(r.ApplyTransitions(ctx, []registry.Transition{resolve})); !got[0] {
		t.Fatal("resolve refused")
	}
	a := must(r.GetAlert(ctx, "a1"))
	if a.State != "resolved" || a.ResolveNS != 200 || a.ResolveValue != "3" || a.FireNS != 100 || a.Value != "7.5" {
		t.Fatalf("alert %+v", a)
	}
	if got := must(r.ListAlerts(ctx, registry.AlertFilter{OwnerID: u.ID, State: "resolved", Limit: 10})); len(got) != 1 {
		t.Fatalf("list alerts %+v", got)
	}
	a = must(r.AcknowledgeAlert(ctx, "a1", u.ID, 300))
	a = must(r.AcknowledgeAlert(ctx, "a1", u.ID+1, 400))
	if a.AckBy != u.ID || a.AckNS != 300 {
		t.Fatalf("second acknowledgement replaced the first: %+v", a)
	}
	evs = must(r.AlertEvents(ctx, 0, evs[0].ID, 10))
	if len(evs) != 2 || evs[0].Event != "resolved" || evs[1].Event != "acknowledged" {
		t.Fatalf("events %+v", evs)
	}
	if last := must(r.LastAlertEvent(ctx)); last != evs[1].ID {
		t.Fatalf("last event %d, want %d", last, evs[1].ID)
	}

	// Deliveries: fired and resolved were queued; a lease is exclusive.
	ds := must(r.ClaimDeliveries(ctx, 1<<62, 1<<62+10, 10))
	if len(ds) != 2 || ds[0].Event != "fired" || ds[1].Event != "resolved" {
		t.Fatalf("claimed %+v", ds)
	}
	if again := must(r.ClaimDeliveries(ctx, 1<<62, 1<<62+10, 10)); len(again) != 0 {
		t.Fatalf("leased deliveries claimed again: %+v", again)
	}
	if err := r.RecordDelivery(ctx, registry.DeliveryAttempt{DeliveryID: ds[0].ID, AlertID: "a1", Event: "fired", Attempt: 1, StatusCode: 500, Error: "status 500", TimeNS: 1}, 5, false); err != nil {
		t.Fatal(err)
	}
	if err := r.RecordDelivery(ctx, registry.DeliveryAttempt{DeliveryID: ds[1].ID, AlertID: "a1", Event: "resolved", Attempt: 1, StatusCode: 204, OK: true, TimeNS: 2}, 0, true); err != nil {
		t.Fatal(err)
	}
	if again := must(r.ClaimDeliveries(ctx, 10, 20, 10)); len(again) != 1 || again[0].ID != ds[0].ID || again[0].Attempts != 1 {
		t.Fatalf("rescheduled delivery: %+v", again)
	}
	if at := must(r.DeliveryAttempts(ctx, "a1")); len(at) != 2 || at[0].StatusCode != 500 || !at[1].OK {
		t.Fatalf("attempts %+v", at)
	}

	// Retention overrides.
	must(0, r.SetSensorRetention(ctx, s.ID, 3600))
	if m := must(r.SensorRetentions(ctx)); m[s.ID] != 3600 {
		t.Fatalf("retentions %v", m)
	}
	must(0, r.SetSensorRetention(ctx, s.ID, 7200))
	must(0, r.SetSensorRetention(ctx, s.ID, 0))
	if m := must(r.SensorRetentions(ctx)); len(m) != 0 {
		t.Fatalf("retention override not removed: %v", m)
	}

	// Deleting the sensor removes its rules; the alert stays.
	must(0, reg.DeleteSensor(ctx, s.ID))
	if _, err := r.GetRule(ctx, ru.ID); err == nil {
		t.Fatal("rule of a deleted sensor kept")
	}
	must(r.GetAlert(ctx, "a1"))
	ru2 := must(r.CreateRule(ctx, registry.Rule{OwnerID: u.ID, Name: "silent", DeviceID: d.ID, Kind: "absence", Spec: []byte(`{}`)}))
	if ru2.SensorID != 0 {
		t.Fatalf("device rule %+v", ru2)
	}
	must(0, r.DeleteRule(ctx, ru2.ID))
	wantErr(t, r.DeleteRule(ctx, ru2.ID), registry.ErrNotFound)
}
