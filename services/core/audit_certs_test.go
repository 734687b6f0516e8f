package core

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/fieldmaskpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
)

// TestAudit_CertificatesAndIngestLimits: registering or removing a client
// certificate changes who may authenticate as a device, and the ingest
// limit is the operator's flood control; both are audited like key
// rotation. Updates that leave the limit alone are not.
func TestAudit_CertificatesAndIngestLimits(t *testing.T) {
	e := newTokenEnv(t, Config{})
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fp := strings.Repeat("ab", 32)
	d, err := e.svc.CreateDevice(e.actx, &corev1.CreateDeviceRequest{Name: "limited", IngestLimit: &corev1.IngestLimit{ReadingsPerSecond: 5, Burst: 10}})
	must(d, err)
	limited := d.GetResult().GetId()
	d, err = e.svc.CreateDevice(e.uctx, &corev1.CreateDeviceRequest{Name: "plain"})
	must(d, err)
	plain := d.GetResult().GetId()
	must(e.svc.AddDeviceCertificate(e.uctx, &corev1.AddDeviceCertificateRequest{DeviceId: plain, Fingerprint: fp}))
	must(e.svc.RemoveDeviceCertificate(e.uctx, &corev1.RemoveDeviceCertificateRequest{DeviceId: plain, Fingerprint: fp}))
	name := "renamed"
	must(e.svc.UpdateDevice(e.uctx, &corev1.UpdateDeviceRequest{Id: plain, Name: &name})) // no limit change: not audited
	must(e.svc.UpdateDevice(e.actx, &corev1.UpdateDeviceRequest{Id: plain, IngestLimit: &corev1.IngestLimit{ReadingsPerSecond: 1, Burst: 2},
		UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"ingest_limit"}}}))
	// Setting the limit it already has changes nothing: not audited.
	must(e.svc.UpdateDevice(e.actx, &corev1.UpdateDeviceRequest{Id: plain, IngestLimit: &corev1.IngestLimit{ReadingsPerSecond: 1, Burst: 2}}))

	want := []struct {
		action string
		target int64
		actor  int64
		detail string
	}{
		{auditDeviceIngestLimit, limited, e.admin.ID, "readings_per_second=5"},
		{auditDeviceCertAdd, plain, e.alice.ID, "fingerprint=" + fp},
		{auditDeviceCertRemove, plain, e.alice.ID, "fingerprint=" + fp},
		{auditDeviceIngestLimit, plain, e.admin.ID, "burst=2"},
	}
	got, err := e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{TargetType: "device", PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	evs := got.GetResult()
	if len(evs) != len(want) {
		var names []string
		for _, ev := range evs {
			names = append(names, ev.GetAction())
		}
		t.Fatalf("device audit events %v, want %d", names, len(want))
	}
	for i, w := range want {
		ev := evs[len(evs)-1-i] // newest first
		var details []string
		for k, v := range ev.GetDetails() {
			details = append(details, k+"="+v)
		}
		if ev.GetAction() != w.action || ev.GetTargetType() != "device" || ev.GetTargetId() != w.target || ev.GetActorId() != w.actor ||
			!strings.Contains(strings.Join(details, ","), w.detail) {
			t.Errorf("event %d = %v, want %+v", i, ev, w)
		}
	}
}
