package iot_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// TestClient_SignInManageAndIngest runs sign-in, device management, device
// ingest (through DeviceClient, which inherits the protocol) and a query
// over Connect, gRPC and gRPC-Web against the built binary.
func TestClient_SignInManageAndIngest(t *testing.T) {
	url := baseURL
	ctx := context.Background()
	for _, proto := range []struct {
		name string
		opts []iot.Option
	}{{"connect", nil}, {"grpc", []iot.Option{iot.WithGRPC()}}, {"grpcweb", []iot.Option{iot.WithGRPCWeb()}}} {
		t.Run(proto.name, func(t *testing.T) {
			c := iot.New(url, proto.opts...)
			if _, err := c.Core.ListDevices(ctx, &corev1.ListDevicesRequest{}); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("before sign-in: %v", err)
			}
			if err := c.SignIn(ctx, "root", "wrong"); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Fatalf("wrong password: %v", err)
			}
			if err := c.SignIn(ctx, "root", "sdk-test-password"); err != nil {
				t.Fatal(err)
			}
			d, err := c.Core.CreateDevice(ctx, &corev1.CreateDeviceRequest{Name: "sdk-" + proto.name})
			if err != nil {
				t.Fatal(err)
			}
			s, err := c.Core.CreateSensor(ctx, &corev1.CreateSensorRequest{DeviceId: d.GetResult().GetId(), Name: "t", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE})
			if err != nil {
				t.Fatal(err)
			}
			dev, err := c.DeviceClient(ctx, d.GetResult().GetId())
			if err != nil {
				t.Fatal(err)
			}
			r, err := dev.Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{
				{SensorId: s.GetSensor().GetId(), Value: &ingestv1.Reading_DoubleValue{DoubleValue: 21.5}},
			}})
			if err != nil || r.GetAccepted() != 1 {
				t.Fatalf("Ingest: %v %v", r, err)
			}
			l, err := c.Query.Latest(ctx, &queryv1.LatestRequest{SensorId: []int64{s.GetSensor().GetId()}})
			if err != nil || len(l.GetReadings()) != 1 || l.GetReadings()[0].GetDoubleValue() != 21.5 {
				t.Fatalf("Latest: %v %v", l, err)
			}
		})
	}
}
