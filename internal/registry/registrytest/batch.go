package registrytest

import (
	"context"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// testBatchReads: a registry offering the batch reads (DeviceAccess,
// GetSensors) answers every existing id of a list longer than one query's
// batch, leaves missing ids out, and sees a rotation at once.
func testBatchReads(t *testing.T, r registry.Registry) {
	gens, ok := r.(registry.DeviceAccessReader)
	sensors, ok2 := r.(registry.SensorsReader)
	if !ok || !ok2 {
		t.Skip("registry without batch reads (callers use the one-key reads)")
	}
	ctx := context.Background()
	u := user(t, r, "batch", registry.RoleUser)
	imported := must(r.CreateDevices(ctx, bulkRows(u.ID, "b", 700)))
	var devIDs, sensorIDs []int64
	for _, d := range imported {
		devIDs = append(devIDs, d.Device.ID)
		for _, s := range d.Sensors {
			sensorIDs = append(sensorIDs, s.ID)
		}
	}
	rotated := must(r.RotateDeviceKey(ctx, devIDs[650]))
	limited := must(r.GetDevice(ctx, devIDs[3]))
	limited.IngestRate, limited.IngestBurst = 2.5, 7
	must(r.UpdateDevice(ctx, limited))
	got := must(gens.DeviceAccess(ctx, append(devIDs, 1<<40)))
	if len(got) != len(devIDs) {
		t.Fatalf("%d generations for %d devices (and one missing id)", len(got), len(devIDs))
	}
	for _, id := range devIDs {
		d := must(r.GetDevice(ctx, id))
		if want := (registry.DeviceAccess{KeyGen: d.KeyGen, IngestRate: d.IngestRate, IngestBurst: d.IngestBurst}); got[id] != want {
			t.Fatalf("device %d: %+v, GetDevice says %+v", id, got[id], want)
		}
	}
	if got[devIDs[650]].KeyGen != rotated.KeyGen || rotated.KeyGen == got[devIDs[0]].KeyGen {
		t.Fatalf("rotated device: %d, want %d (others %d)", got[devIDs[650]].KeyGen, rotated.KeyGen, got[devIDs[0]].KeyGen)
	}
	if a := got[devIDs[3]]; a.IngestRate != 2.5 || a.IngestBurst != 7 {
		t.Fatalf("device with a limit override: %+v", a)
	}
	ss := must(sensors.GetSensors(ctx, append(sensorIDs, 1<<40)))
	if len(ss) != len(sensorIDs) {
		t.Fatalf("%d sensors for %d ids (and one missing id)", len(ss), len(sensorIDs))
	}
	for _, id := range []int64{sensorIDs[0], sensorIDs[999], sensorIDs[len(sensorIDs)-1]} {
		if want := must(r.GetSensor(ctx, id)); ss[id] != want {
			t.Fatalf("sensor %d: %+v, GetSensor says %+v", id, ss[id], want)
		}
	}
}
