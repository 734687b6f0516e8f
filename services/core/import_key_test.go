package core

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
)

// TestImportDevices_KeysKeepTheKeyExpiry re-imports a device whose key was
// rotated with a ttl: the key ImportDevices returns for the existing device
// must expire with the stored key (not be a never-expiring key of the same
// generation), and an expired key is not reissued.
func TestImportDevices_KeysKeepTheKeyExpiry(t *testing.T) {
	e := newTokenEnv(t, Config{})
	req := &corev1.ImportDevicesRequest{ReturnKeys: true, Devices: []*corev1.DeviceImport{{Name: "car", ExternalId: "vin-1"}}}
	res, err := e.svc.ImportDevices(e.uctx, req)
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetResults()[0].GetId()
	r, err := e.svc.RotateDeviceKey(e.uctx, &corev1.RotateDeviceKeyRequest{Id: id, Ttl: durationpb.New(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	res, err = e.svc.ImportDevices(e.uctx, req)
	if err != nil || res.GetResults()[0].GetCreated() || res.GetResults()[0].GetId() != id {
		t.Fatalf("re-import: %v, %v", res, err)
	}
	key := res.GetResults()[0].GetKey()
	if p, err := e.ver.Authenticate(context.Background(), key); err != nil || p.ID != id {
		t.Fatalf("re-imported key: %+v, %v", p, err)
	}
	time.Sleep(time.Until(r.GetExpireTime().AsTime()) + 100*time.Millisecond)
	if _, err := e.ver.Authenticate(context.Background(), key); !errors.Is(err, authn.ErrTokenExpired) {
		t.Fatalf("the key from ImportDevices outlives the key's expiry: err %v, want ErrTokenExpired", err)
	}
	res, err = e.svc.ImportDevices(e.uctx, req)
	if err != nil || res.GetResults()[0].GetKey() != "" {
		t.Fatalf("re-import with return_keys after the key expired: %v, %v; want no key (rotate it)", res, err)
	}
}
