package iot_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// These examples run against a real platform in `go test` (baseURL and
// password point at it); in your code use your API URL, e.g.
// "http://localhost:8080", and your credentials.

// Sign in as a user; the client sends the token with every later call and
// renews it before it expires.
func Example_signIn() {
	ctx := context.Background()
	c := iot.New(baseURL)
	if err := c.SignIn(ctx, "root", password); err != nil {
		log.Fatal(err)
	}
	me, err := c.Core.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(me.GetResult().GetUsername())
	// Output: root
}

// Register a device with a sensor, list its sensors and delete it again.
func Example_manageDevices() {
	ctx := context.Background()
	c := iot.New(baseURL)
	if err := c.SignIn(ctx, "root", password); err != nil {
		log.Fatal(err)
	}
	dev, err := c.Core.CreateDevice(ctx, &corev1.CreateDeviceRequest{Name: "greenhouse", Labels: map[string]string{"site": "north"}})
	if err != nil {
		log.Fatal(err)
	}
	id := dev.GetResult().GetId()
	if _, err := c.Core.CreateSensor(ctx, &corev1.CreateSensorRequest{
		DeviceId: id, Name: "temperature", Unit: "°C", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE,
	}); err != nil {
		log.Fatal(err)
	}
	sensors, err := c.Core.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: id})
	if err != nil {
		log.Fatal(err)
	}
	for _, s := range sensors.GetResult() {
		fmt.Println(dev.GetResult().GetName(), s.GetName(), s.GetUnit())
	}
	if _, err := c.Core.DeleteDevice(ctx, &corev1.DeleteDeviceRequest{Id: id}); err != nil {
		log.Fatal(err)
	}
	// Output: greenhouse temperature °C
}

// newSensor signs in and registers a device with one double sensor; the
// examples below start from it.
func newSensor(ctx context.Context, c *iot.Client, name string) (deviceID, sensorID int64) {
	if err := c.SignIn(ctx, "root", password); err != nil {
		log.Fatal(err)
	}
	dev, err := c.Core.CreateDevice(ctx, &corev1.CreateDeviceRequest{Name: name})
	if err != nil {
		log.Fatal(err)
	}
	s, err := c.Core.CreateSensor(ctx, &corev1.CreateSensorRequest{
		DeviceId: dev.GetResult().GetId(), Name: "temperature", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE,
	})
	if err != nil {
		log.Fatal(err)
	}
	return dev.GetResult().GetId(), s.GetSensor().GetId()
}

// Push readings as a device: DeviceClient fetches the device key with the
// user's token and returns a client of the same API that sends it. Ingest
// returns once every reading is durable.
func ExampleClient_DeviceClient() {
	ctx := context.Background()
	c := iot.New(baseURL)
	deviceID, sensorID := newSensor(ctx, c, "push-example")

	dev, err := c.DeviceClient(ctx, deviceID)
	if err != nil {
		log.Fatal(err)
	}
	resp, err := dev.Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{
		{SensorId: sensorID, Timestamp: timestamppb.Now(), Value: &ingestv1.Reading_DoubleValue{DoubleValue: 21.5}},
		{SensorId: sensorID, Timestamp: timestamppb.Now(), Value: &ingestv1.Reading_DoubleValue{DoubleValue: 21.7}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("accepted", resp.GetAccepted())
	// Output: accepted 2
}

// Stream readings over one bidirectional IngestStream: every batch is
// acknowledged with its sequence number once it is durable, so a producer
// keeps a window of unacknowledged batches and resends them after a
// reconnect. Bidirectional streams need HTTP/2: WithHTTP2 for http:// URLs
// (https:// negotiates it), or WithGRPC.
func Example_streamIngestWithAcks() {
	ctx := context.Background()
	c := iot.New(baseURL, iot.WithHTTP2())
	deviceID, sensorID := newSensor(ctx, c, "stream-example")
	dev, err := c.DeviceClient(ctx, deviceID)
	if err != nil {
		log.Fatal(err)
	}

	stream, err := dev.Ingest.IngestStream(ctx)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	for seq := uint64(1); seq <= 3; seq++ {
		batch := &ingestv1.IngestStreamRequest{Sequence: seq}
		for i := range 10 {
			ts := start.Add(time.Duration(seq*10+uint64(i)) * time.Millisecond)
			batch.Readings = append(batch.Readings, &ingestv1.Reading{
				SensorId: sensorID, Timestamp: timestamppb.New(ts), Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(i)},
			})
		}
		if err := stream.Send(batch); err != nil {
			log.Fatal(err)
		}
	}
	if err := stream.CloseRequest(); err != nil {
		log.Fatal(err)
	}
	for {
		ack, err := stream.Receive()
		if err != nil {
			break // io.EOF once every batch is acknowledged
		}
		fmt.Printf("batch %d: %d accepted, %d errors\n", ack.GetSequence(), ack.GetAccepted(), len(ack.GetErrors()))
	}
	if err := stream.CloseResponse(); err != nil {
		log.Fatal(err)
	}
	// Output:
	// batch 1: 10 accepted, 0 errors
	// batch 2: 10 accepted, 0 errors
	// batch 3: 10 accepted, 0 errors
}

// Subscribe to live readings. Since replays what was stored from that time
// on, so nothing is missed between subscribing and the first live reading.
func Example_subscribe() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := iot.New(baseURL)
	deviceID, sensorID := newSensor(ctx, c, "subscribe-example")
	since := time.Now().Add(-time.Second)

	sub, err := c.Query.Subscribe(ctx, &queryv1.SubscribeRequest{SensorId: []int64{sensorID}, Since: since.Format(time.RFC3339Nano)})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	dev, err := c.DeviceClient(ctx, deviceID)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := dev.Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{
		{SensorId: sensorID, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 42}},
	}}); err != nil {
		log.Fatal(err)
	}
	for sub.Receive() {
		for _, r := range sub.Msg().GetReadings() {
			fmt.Println("live", r.GetDoubleValue())
		}
		if len(sub.Msg().GetReadings()) > 0 {
			break
		}
	}
	if err := sub.Err(); err != nil {
		log.Fatal(err)
	}
	// Output: live 42
}

// Query stored readings: a range (paged with next_page_token) and
// aggregates per interval.
func Example_query() {
	ctx := context.Background()
	c := iot.New(baseURL)
	deviceID, sensorID := newSensor(ctx, c, "query-example")
	dev, err := c.DeviceClient(ctx, deviceID)
	if err != nil {
		log.Fatal(err)
	}
	start := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var readings []*ingestv1.Reading
	for i := range 6 {
		readings = append(readings, &ingestv1.Reading{SensorId: sensorID,
			Timestamp: timestamppb.New(start.Add(time.Duration(i) * 10 * time.Minute)),
			Value:     &ingestv1.Reading_DoubleValue{DoubleValue: float64(i)}})
	}
	if _, err := dev.Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: readings}); err != nil {
		log.Fatal(err)
	}

	page, err := c.Query.ListReadings(ctx, &queryv1.ListReadingsRequest{
		SensorId: sensorID, From: "2026-01-01T12:00:00Z", To: "2026-01-01T13:00:00Z", Limit: 3,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("first page:", len(page.GetReadings()), "readings, more:", page.GetNextPageToken() != "")

	agg, err := c.Query.Aggregate(ctx, &queryv1.AggregateRequest{
		SensorId: sensorID, From: "2026-01-01T12:00:00Z", To: "2026-01-01T13:00:00Z", Interval: "30m", Fn: []string{"avg", "max"},
	})
	if err != nil {
		log.Fatal(err)
	}
	for _, b := range agg.GetBuckets() {
		fmt.Printf("%s count=%d avg=%.1f max=%.0f\n", b.GetStart().AsTime().Format("15:04"), b.GetCount(), b.GetAvg(), b.GetMax())
	}
	// Output:
	// first page: 3 readings, more: true
	// 12:00 count=3 avg=1.0 max=2
	// 12:30 count=3 avg=4.0 max=5
}
