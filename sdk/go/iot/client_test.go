package iot_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/app"
	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// startPlatform runs the whole platform in-process on loopback ports.
func startPlatform(t *testing.T, extra ...string) string {
	t.Helper()
	cfg, err := app.ParseConfig(append([]string{"--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
		"--ws-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Core.AdminPassword = "sdk-test-password"
	a, err := app.New(slog.New(slog.NewTextHandler(io.Discard, nil)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("platform stopped with %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("platform failed to start: %v", err)
	}
	return "http://" + a.Addr("api")
}

func TestClient_SignInManageAndIngest(t *testing.T) {
	url := startPlatform(t)
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
			dev, err := c.DeviceClient(ctx, url, d.GetResult().GetId(), proto.opts...)
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
