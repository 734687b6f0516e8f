package core

import (
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
)

// TestIngestLimit_OnlyAdminsChangeIt: the per-device ingest limit is the
// operator's defence against a flooding device, so its owner (a non-admin)
// can neither lift it on create nor raise or reset it on update; an admin
// can, and the owner's other updates keep working.
func TestIngestLimit_OnlyAdminsChangeIt(t *testing.T) {
	e := newTokenEnv(t, Config{})
	huge := &corev1.IngestLimit{ReadingsPerSecond: 1e12, Burst: 1 << 62}
	if _, err := e.svc.CreateDevice(e.uctx, &corev1.CreateDeviceRequest{Name: "flood", IngestLimit: huge}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("user creates a device with ingest_limit %v: %v, want PermissionDenied", huge, err)
	}
	d, err := e.svc.CreateDevice(e.uctx, &corev1.CreateDeviceRequest{Name: "car", IngestLimit: &corev1.IngestLimit{}})
	if err != nil {
		t.Fatalf("user creates a device with the default (empty) ingest_limit: %v", err)
	}
	id := d.GetResult().GetId()
	if _, err := e.svc.UpdateDevice(e.uctx, &corev1.UpdateDeviceRequest{Id: id, IngestLimit: huge}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("owner raises the ingest limit: %v, want PermissionDenied", err)
	}
	tight := &corev1.IngestLimit{ReadingsPerSecond: 1, Burst: 2}
	if _, err := e.svc.UpdateDevice(e.actx, &corev1.UpdateDeviceRequest{Id: id, IngestLimit: tight}); err != nil {
		t.Fatalf("admin sets the ingest limit: %v", err)
	}
	reset := &corev1.UpdateDeviceRequest{Id: id, IngestLimit: &corev1.IngestLimit{}, UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"ingest_limit"}}}
	if _, err := e.svc.UpdateDevice(e.uctx, reset); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("owner resets an admin's ingest limit to the defaults: %v, want PermissionDenied", err)
	}
	name := "car2"
	r, err := e.svc.UpdateDevice(e.uctx, &corev1.UpdateDeviceRequest{Id: id, Name: &name})
	if err != nil || r.GetResult().GetIngestLimit().GetReadingsPerSecond() != 1 {
		t.Fatalf("owner renames the device: %v, %v; want the admin's limit kept", r, err)
	}
	// Sending back the limit the device already has (a read-modify-write
	// client) is not a change.
	if _, err := e.svc.UpdateDevice(e.uctx, &corev1.UpdateDeviceRequest{Id: id, Name: &name, IngestLimit: tight}); err != nil {
		t.Fatalf("owner sends the unchanged ingest limit back: %v", err)
	}
}
