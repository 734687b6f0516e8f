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
	// A fingerprint is registered once per device.
	_, err := r.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fa, DeviceID: d1.ID})
	wantErr(t, err, registry.ErrAlreadyExists)
	if got := must(r.GetDeviceCertificate(ctx, d1.ID, fa)); got.DeviceID != d1.ID || got.Fingerprint != fa {
		t.Fatalf("lookup by device and fingerprint: %+v", got)
	}
	_, err = r.GetDeviceCertificate(ctx, d2.ID, fa)
	wantErr(t, err, registry.ErrNotFound)
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
	_, err = r.GetDeviceCertificate(ctx, d1.ID, fa)
	wantErr(t, err, registry.ErrNotFound)
	wantErr(t, r.RemoveDeviceCertificate(ctx, d1.ID, fa), registry.ErrNotFound)
	// Deleting the device removes its certificates.
	must(r.DeleteDevice(ctx, d1.ID))
	_, err = r.GetDeviceCertificate(ctx, d1.ID, fb)
	wantErr(t, err, registry.ErrNotFound)
}

// testDeviceCertificateSquatting: fingerprints are public, so another
// owner registering one first must neither block the rightful owner
// (AlreadyExists) nor take over or disturb the owner's registration.
func testDeviceCertificateSquatting(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	owner := user(t, r, "certrightful", registry.RoleUser)
	squatter := user(t, r, "certsquatter", registry.RoleUser)
	mine := must(r.CreateDevice(ctx, registry.Device{OwnerID: owner.ID, Name: "mine"}))
	theirs := must(r.CreateDevice(ctx, registry.Device{OwnerID: squatter.ID, Name: "theirs"}))
	fp := strings.Repeat("c", 64)
	must(r.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fp, DeviceID: theirs.ID}))
	c, err := r.AddDeviceCertificate(ctx, registry.DeviceCertificate{Fingerprint: fp, DeviceID: mine.ID})
	if err != nil {
		t.Fatalf("owner registering a fingerprint another device registered first: %v", err)
	}
	if c.DeviceID != mine.ID || c.Fingerprint != fp {
		t.Fatalf("registered %+v", c)
	}
	if got := must(r.GetDeviceCertificate(ctx, mine.ID, fp)); got.DeviceID != mine.ID {
		t.Fatalf("owner's registration: %+v", got)
	}
	if got := must(r.ListDeviceCertificates(ctx, mine.ID)); len(got) != 1 || got[0].Fingerprint != fp {
		t.Fatalf("owner's device lists %v", got)
	}
	// The squatter removing theirs leaves the owner's registration alone.
	if err := r.RemoveDeviceCertificate(ctx, theirs.ID, fp); err != nil {
		t.Fatal(err)
	}
	if _, err := r.GetDeviceCertificate(ctx, mine.ID, fp); err != nil {
		t.Fatalf("owner's registration after the squatter removed theirs: %v", err)
	}
	_, err = r.GetDeviceCertificate(ctx, theirs.ID, fp)
	wantErr(t, err, registry.ErrNotFound)
}
