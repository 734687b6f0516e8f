// Command producer is a sample iotplatform producer in Go: it pushes
// readings of one sensor over HTTP, MQTT or a gRPC IngestStream (with
// per-batch acks), the last through the Go SDK
// (github.com/iotplatform/iotplatform/sdk/go/iot).
//
//	IOT_DEVICE_ID=... IOT_DEVICE_KEY=... IOT_SENSOR_ID=... go run . grpc
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

type config struct {
	deviceID, key         string
	sensorID              int64
	count                 int
	interval              time.Duration
	api, httpURL, mqttURL string
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("producer: ")
	var c config
	var sensor string
	flag.StringVar(&c.deviceID, "device-id", env("IOT_DEVICE_ID", ""), "device id, the MQTT topic ($IOT_DEVICE_ID)")
	flag.StringVar(&c.key, "key", env("IOT_DEVICE_KEY", os.Getenv("IOT_TOKEN")), "device key ($IOT_DEVICE_KEY)")
	flag.StringVar(&sensor, "sensor-id", env("IOT_SENSOR_ID", ""), "a double sensor of the device ($IOT_SENSOR_ID)")
	count, _ := strconv.Atoi(env("IOT_COUNT", "10"))
	flag.IntVar(&c.count, "count", count, "readings to send ($IOT_COUNT)")
	interval, err := strconv.ParseFloat(env("IOT_INTERVAL", "1"), 64)
	if err != nil || interval < 0 {
		log.Fatalf("IOT_INTERVAL=%q: want seconds", os.Getenv("IOT_INTERVAL"))
	}
	seconds := flag.Float64("interval", interval, "seconds between readings ($IOT_INTERVAL)")
	flag.StringVar(&c.api, "api", env("IOT_API", "http://localhost:8080"), "API URL for grpc ($IOT_API)")
	flag.StringVar(&c.httpURL, "http-url", env("IOT_HTTP_URL", "http://localhost:8083/"), "HTTP gateway ($IOT_HTTP_URL)")
	flag.StringVar(&c.mqttURL, "mqtt-url", env("IOT_MQTT_URL", "mqtt://localhost:1883"), "MQTT broker ($IOT_MQTT_URL)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: producer [flags] http|mqtt|grpc")
		flag.PrintDefaults()
	}
	flag.Parse()
	c.interval = time.Duration(*seconds * float64(time.Second))
	protocol := flag.Arg(0)
	if protocol == "" {
		protocol = env("IOT_PROTOCOL", "http")
	}
	c.sensorID, _ = strconv.ParseInt(sensor, 10, 64)
	if c.key == "" || c.sensorID <= 0 || (protocol == "mqtt" && c.deviceID == "") || c.count < 1 {
		flag.Usage()
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	switch protocol {
	case "http":
		err = sendHTTP(ctx, c)
	case "mqtt":
		err = sendMQTT(c)
	case "grpc":
		err = sendGRPC(ctx, c)
	default:
		err = fmt.Errorf("protocol %q: want http, mqtt or grpc", protocol)
	}
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("sent %d readings over %s\n", c.count, protocol)
}

// reading i of the sensor, at a distinct time.
func reading(c config, i int) (time.Time, float64) {
	return time.Now().Add(time.Duration(i) * time.Millisecond), 20 + 0.5*float64(i)
}

func readingJSON(c config, i int) []byte {
	ts, v := reading(c, i)
	b, _ := json.Marshal(map[string]any{"sensor_id": strconv.FormatInt(c.sensorID, 10), "timestamp": ts.UnixMilli(), "value": v})
	return b
}

// sendHTTP posts one JSON reading a request; 200 {"accepted": 1} means durable.
func sendHTTP(ctx context.Context, c config) error {
	for i := range c.count {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.httpURL, bytes.NewReader(readingJSON(c, i)))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+c.key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("http %d %s", resp.StatusCode, body)
		}
		fmt.Printf("http %d %s\n", resp.StatusCode, bytes.TrimSpace(body))
		time.Sleep(c.interval)
	}
	return nil
}

// sendMQTT publishes with QoS 1 to the device's topic: the PUBACK comes
// once the reading is durable.
func sendMQTT(c config) error {
	opts := pahov3.NewClientOptions().AddBroker(c.mqttURL).SetClientID("go-producer-" + c.deviceID).
		SetUsername("JWT").SetPassword(c.key).SetAutoReconnect(false).SetConnectTimeout(10 * time.Second)
	client := pahov3.NewClient(opts)
	if t := client.Connect(); t.Wait() && t.Error() != nil {
		return fmt.Errorf("mqtt connect: %w", t.Error())
	}
	defer client.Disconnect(250)
	for i := range c.count {
		t := client.Publish(c.deviceID, 1, false, readingJSON(c, i))
		if !t.WaitTimeout(10 * time.Second) {
			return fmt.Errorf("mqtt: no PUBACK for reading %d", i)
		}
		if err := t.Error(); err != nil {
			return fmt.Errorf("mqtt: %w", err)
		}
		fmt.Println("mqtt puback")
		time.Sleep(c.interval)
	}
	return nil
}

// sendGRPC streams one batch a reading over IngestStream (gRPC, HTTP/2) and
// waits for each batch's ack, which comes once its readings are durable.
func sendGRPC(ctx context.Context, c config) error {
	client := iot.New(c.api, iot.WithToken(c.key), iot.WithGRPC())
	stream, err := client.Ingest.IngestStream(ctx)
	if err != nil {
		return err
	}
	for i := range c.count {
		ts, v := reading(c, i)
		err := stream.Send(&ingestv1.IngestStreamRequest{Sequence: uint64(i + 1), Readings: []*ingestv1.Reading{{
			SensorId: c.sensorID, Timestamp: timestamppb.New(ts), Value: &ingestv1.Reading_DoubleValue{DoubleValue: v},
		}}})
		if err != nil {
			return fmt.Errorf("grpc send: %w", err)
		}
		ack, err := stream.Receive()
		if err != nil {
			return fmt.Errorf("grpc ack: %w", err)
		}
		if len(ack.GetErrors()) > 0 {
			return fmt.Errorf("grpc: batch %d refused: %v", ack.GetSequence(), ack.GetErrors())
		}
		fmt.Printf("grpc ack sequence %d accepted %d\n", ack.GetSequence(), ack.GetAccepted())
		time.Sleep(c.interval)
	}
	if err := stream.CloseRequest(); err != nil {
		return err
	}
	return stream.CloseResponse()
}
