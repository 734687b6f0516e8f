package buswal

import (
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
)

// TestFleetWindow: the group commit lingers only while at least n distinct
// devices published in the current 100 ms window or the previous one; a
// window stretched by a quiet spell does not count.
func TestFleetWindow(t *testing.T) {
	pub := func(dev int64) *appendReq { return &appendReq{recs: []*busv1.Record{{DeviceId: dev}}} }
	var w fleetWindow
	t0 := time.Unix(1000, 0)
	w.note(pub(1), t0)
	w.note(pub(2), time.Time{}) // gathered into the same group
	w.note(pub(2), t0.Add(10*time.Millisecond))
	if w.many(3) {
		t.Fatal("2 devices counted as 3")
	}
	if !w.many(-1) {
		t.Fatal("n < 0 must always linger")
	}
	w.note(pub(3), t0.Add(20*time.Millisecond))
	if !w.many(3) {
		t.Fatal("3 devices in the window not counted")
	}
	w.note(pub(1), t0.Add(150*time.Millisecond)) // next window: the previous one had 3
	if !w.many(3) {
		t.Fatal("the previous window's 3 devices no longer count")
	}
	w.note(pub(1), t0.Add(260*time.Millisecond)) // previous window: 1 device
	if w.many(3) {
		t.Fatal("a window of 1 device counted as many")
	}
	for d := int64(10); d < 20; d++ {
		w.note(pub(d), t0.Add(270*time.Millisecond))
	}
	w.note(pub(1), t0.Add(2*time.Second)) // a quiet spell: that window stretched over 1.7 s
	if w.many(3) {
		t.Fatal("devices spread over a quiet spell counted as a fleet")
	}
	// One publish merging three devices' readings (an MQTT round) counts
	// three devices.
	w.note(&appendReq{recs: []*busv1.Record{{DeviceId: 7}, {DeviceId: 7}, {DeviceId: 8}, {DeviceId: 9}}}, t0.Add(2300*time.Millisecond))
	if !w.many(3) {
		t.Fatal("a publish of 3 devices' readings counted as fewer")
	}
}
