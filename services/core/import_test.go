package core

import (
	"errors"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
)

func importReq(keys bool, names ...string) *corev1.ImportDevicesRequest {
	req := &corev1.ImportDevicesRequest{ReturnKeys: keys}
	for _, n := range names {
		req.Devices = append(req.Devices, &corev1.DeviceImport{ExternalId: "ext-" + n, Name: n,
			Sensors: []*corev1.SensorImport{{Name: "t", Mapping: `{"type":"float"}`, Path: "/env/"}}})
	}
	return req
}

// TestImportDevices: keys verify as the devices' own, a retry returns the
// same ids, a bad row is refused with its index, the call is audited.
func TestImportDevices(t *testing.T) {
	e := newTokenEnv(t, Config{})
	res, err := e.svc.ImportDevices(e.uctx, importReq(true, "a", "b"))
	if err != nil || res.GetCreated() != 2 {
		t.Fatalf("import: %v %v", res, err)
	}
	for _, r := range res.GetResults() {
		p, err := e.ver.Authenticate(e.uctx, r.GetKey())
		if err != nil || p.Kind != authn.KindDevice || p.ID != r.GetId() {
			t.Fatalf("key of device %d authenticates as %+v (%v)", r.GetId(), p, err)
		}
		ss, err := e.svc.ListSensors(e.uctx, &corev1.ListSensorsRequest{DeviceId: r.GetId()})
		if err != nil || len(ss.GetResult()) != 1 || ss.GetResult()[0].GetPath() != "env" || ss.GetResult()[0].GetId() != r.GetSensorIds()[0] {
			t.Fatalf("sensors of device %d: %v %v", r.GetId(), ss, err)
		}
	}
	again, err := e.svc.ImportDevices(e.uctx, importReq(false, "a", "b"))
	if err != nil || again.GetCreated() != 0 || again.GetResults()[1].GetId() != res.GetResults()[1].GetId() ||
		again.GetResults()[1].GetSensorIds()[0] != res.GetResults()[1].GetSensorIds()[0] || again.GetResults()[0].GetKey() != "" {
		t.Fatalf("retry: %v %v", again, err)
	}
	bad := importReq(false, "c", "d", "c2")
	bad.Devices[2].ExternalId = "ext-c"
	_, err = e.svc.ImportDevices(e.uctx, bad)
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "devices[2].external_id: repeats row 0") {
		t.Fatalf("repeated external id: %v", err)
	}
	if v, derr := ce.Details()[0].Value(); derr != nil || v.(*errdetails.BadRequest).GetFieldViolations()[0].GetField() != "devices[2].external_id" {
		t.Fatalf("detail: %v %v", v, derr)
	}
	if _, err := e.svc.ImportDevices(e.uctx, &corev1.ImportDevicesRequest{}); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("empty import: %v", err)
	}
	ev, err := e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	var imports []string
	for _, a := range ev.GetResult() {
		if a.GetAction() == auditDevicesImport {
			imports = append(imports, a.GetDetails()["created"]+"/"+a.GetDetails()["keys_returned"])
		}
	}
	if strings.Join(imports, ",") != "0/false,2/true" { // newest first
		t.Fatalf("import audit events (created/keys) = %v", imports)
	}
}
