package registrytest

import (
	"context"
	"strings"
	"testing"

	"github.com/iotplatform/iotplatform/internal/registry"
)

func testDeviceCertificates(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	u := user(t, r, "certowner", registry.RoleUser)
	d1 := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d1"}))
	d2 := must(r.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d2"}))
	fa, fb := strings.Repeat("a", 64), strings.Repeat("b", 64)
	c := must(r.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fa, DeviceID: d1.ID}))
	if c.Fingerprint != fa || c.DeviceID != d1.ID || c.CreatedAt.IsZero() {
		t.Fatalf("added certificate incomplete: %+v", c)
	}
	must(r.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fb, DeviceID: d1.ID}))
	// A fingerprint belongs to one device.
	_, err := r.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fa, DeviceID: d2.ID})
	wantErr(t, err, registry.ErrAlreadyExists)
	if got := must(r.GetDeviceCertificate(ctx, fa)); got.DeviceID != d1.ID {
		t.Fatalf("fingerprint maps to device %d, want %d", got.DeviceID, d1.ID)
	}
	if got := must(r.ListDeviceCertificates(ctx, d1.ID)); len(got) != 2 {
		t.Fatalf("device has %d certificates, want 2", len(got))
	}
	if got := must(r.ListDeviceCertificates(ctx, d2.ID)); len(got) != 0 {
		t.Fatalf("other device lists %v", got)
	}
	// Removal is scoped by device.
	wantErr(t, r.RemoveDeviceCertificate(ctx, d2.ID, fa), registry.ErrNotFound)
	if err := r.RemoveDeviceCertificate(ctx, d1.ID, fa); err != nil {
		t.Fatal(err)
	}
	_, err = r.GetDeviceCertificate(ctx, fa)
	wantErr(t, err, registry.ErrNotFound)
	wantErr(t, r.RemoveDeviceCertificate(ctx, d1.ID, fa), registry.ErrNotFound)
	// Deleting the device removes its certificates.
	must(r.DeleteDevice(ctx, d1.ID))
	_, err = r.GetDeviceCertificate(ctx, fb)
	wantErr(t, err, registry.ErrNotFound)
}
