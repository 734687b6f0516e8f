package e2e

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// TestStreams_EndWhenTheKeyIsRotated: an open IngestStream and an open
// Subscribe must not outlive a key rotation (found in review).
func TestStreams_EndWhenTheKeyIsRotated(t *testing.T) {
	p := Start(t, Options{Args: []string{"--query-auth-cache-ttl", "300ms"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := p.AdminToken()
	core := iot.New(p.URL(), iot.WithToken(admin)).Core
	d := p.NewDevice(admin, "streamer", "double")
	sensor := mustID(t, d.SensorID)

	// IngestStream: one batch is acked, then the key is rotated.
	stream, err := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(d.Token)).Ingest.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	send := func(seq uint64) error {
		return stream.Send(&ingestv1.IngestStreamRequest{Sequence: seq, Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(seq)}}}})
	}
	if err := send(1); err != nil {
		t.Fatal(err)
	}
	if ack, err := stream.Receive(); err != nil || ack.GetAccepted() != 1 {
		t.Fatalf("first ack: %v %v", ack, err)
	}

	// Subscribe as a consumer granted the sensor.
	c, err := core.CreateConsumer(ctx, &corev1.CreateConsumerRequest{Name: "watcher"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.GrantSensor(ctx, &corev1.GrantSensorRequest{ConsumerId: c.GetResult().GetId(), SensorId: sensor}); err != nil {
		t.Fatal(err)
	}
	ck, _ := core.GetConsumerKey(ctx, &corev1.GetConsumerKeyRequest{Id: c.GetResult().GetId()})
	sub, err := iot.New(p.URL(), iot.WithToken(ck.GetToken())).Query.Subscribe(ctx, &queryv1.SubscribeRequest{SensorId: []int64{sensor}})
	if err != nil {
		t.Fatal(err)
	}
	if !sub.Receive() { // the empty "subscribed" message
		t.Fatalf("subscribe: %v", sub.Err())
	}

	if _, err := core.RotateDeviceKey(ctx, &corev1.RotateDeviceKeyRequest{Id: mustID(t, d.ID)}); err != nil {
		t.Fatal(err)
	}
	if _, err := core.RotateConsumerKey(ctx, &corev1.RotateConsumerKeyRequest{Id: c.GetResult().GetId()}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // past the staleness bound (--auth-cache-ttl 200ms)

	// The next batch on the old key ends the ingest stream, unacknowledged.
	_ = send(2)
	if ack, err := stream.Receive(); err == nil {
		t.Fatalf("a rotated key's stream acked %v", ack)
	} else if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("ingest stream ended with %v, want unauthenticated", err)
	}

	// The subscription ends at its next re-check.
	done := make(chan error, 1)
	go func() {
		for sub.Receive() {
		}
		done <- sub.Err()
	}()
	select {
	case err := <-done:
		if connect.CodeOf(err) != connect.CodeUnauthenticated {
			t.Fatalf("subscription ended with %v, want unauthenticated", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("subscription of a rotated consumer key still open after 10 s")
	}
}
