package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/testenv"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// postReading sends body to the HTTP gateway and returns the status.
func postReading(t *testing.T, p *Platform, token, contentType string, body []byte) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.HTTP+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header["authorization"] = []string{"Bearer " + token}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// pushAllEdges sends one double reading per edge, with distinct values
// (value = 1..7), and fails unless every edge acknowledged it.
func pushAllEdges(t *testing.T, p *Platform, d Device) {
	t.Helper()
	sensor := mustID(t, d.SensorID)
	// 1: HTTP JSON, 2: HTTP protobuf.
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":"`+d.SensorID+`","timestamp":1526717967,"value":"1"}`)); s != 200 {
		t.Fatalf("HTTP JSON: %d\n%s", s, tail(p.Logs(), 20))
	}
	pb, _ := proto.Marshal(&ingestv1.ReadingBatch{Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 2}}}})
	if s := postReading(t, p, d.Token, "application/x-protobuf", pb); s != 200 {
		t.Fatalf("HTTP protobuf: %d", s)
	}
	// 3: WebSocket text frame with header auth, 4: binary frame with a query token.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i, dial := range []struct {
		url string
		h   http.Header
		typ websocket.MessageType
		msg []byte
	}{
		{"ws://" + p.WS + "/", http.Header{"authorization": {"Bearer " + d.Token}}, websocket.MessageText, []byte(`[{"sensor_id":` + d.SensorID + `,"value":3}]`)},
		{"ws://" + p.WS + "/?access_token=" + d.Token, nil, websocket.MessageBinary, mustMarshal(&ingestv1.ReadingBatch{Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_LongValue{LongValue: 4}}}})},
	} {
		c, _, err := websocket.Dial(ctx, dial.url, &websocket.DialOptions{HTTPHeader: dial.h})
		if err != nil {
			t.Fatalf("ws dial %d: %v", i, err)
		}
		if err := c.Write(ctx, dial.typ, dial.msg); err != nil {
			t.Fatal(err)
		}
		_, ack, err := c.Read(ctx)
		if err != nil || !bytes.Contains(ack, []byte(`"status":200`)) {
			t.Fatalf("ws ack %d: %s %v", i, ack, err)
		}
		c.Close(websocket.StatusNormalClosure, "")
	}
	// 5: MQTT 3.1.1 QoS 1 (Go client), 6: MQTT 5 QoS 1 (mosquitto_pub) or 3.1 Go client.
	o := pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("e2e-" + d.ID).
		SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(4).SetAutoReconnect(false)
	mc := pahov3.NewClient(o)
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	if tk := mc.Publish(d.ID, 1, false, `{"sensor_id":"`+d.SensorID+`","value":5}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt publish: %v", tk.Error())
	}
	mc.Disconnect(100)
	if bin, err := exec.LookPath("mosquitto_pub"); err == nil {
		host, port, _ := net.SplitHostPort(p.MQTT)
		if out, err := exec.Command(bin, "-h", host, "-p", port, "-V", "mqttv5", "-q", "1", "-u", "JWT", "-P", d.Token,
			"-t", d.ID, "-m", `{"sensor_id":`+d.SensorID+`,"value":"6"}`).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_pub: %v %s", err, out)
		}
	} else {
		o := pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("e2e31-" + d.ID).
			SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(3).SetAutoReconnect(false)
		mc := pahov3.NewClient(o)
		if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("mqtt 3.1 connect: %v", tk.Error())
		}
		if tk := mc.Publish(d.ID, 1, false, `{"sensor_id":"`+d.SensorID+`","value":6}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("mqtt 3.1 publish: %v", tk.Error())
		}
		mc.Disconnect(100)
	}
	// 7: IngestStream over gRPC.
	c := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(d.Token)).Ingest
	s, err := c.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&ingestv1.IngestStreamRequest{Sequence: 7, Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 7}}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Receive(); err != nil || r.GetSequence() != 7 || r.GetAccepted() != 1 {
		t.Fatalf("stream ack %v %v", r, err)
	}
	_ = s.CloseRequest()
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

// consume reads topic with an independent consumer group until want
// distinct values of the sensor arrived.
func consume(t *testing.T, brokers, topic string, sensor int64, want int) map[float64]*busv1.Record {
	t.Helper()
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "e2e-check-" + randHex(4),
		"auto.offset.reset": "earliest", "enable.auto.commit": false})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
		t.Fatal(err)
	}
	got := map[float64]*busv1.Record{}
	deadline := time.Now().Add(60 * time.Second)
	for len(got) < want && time.Now().Before(deadline) {
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			continue
		}
		var r busv1.Record
		if err := proto.Unmarshal(m.Value, &r); err != nil {
			t.Fatalf("record on %s is not a busv1.Record: %v", topic, err)
		}
		if r.GetSensorId() == sensor {
			got[r.GetDoubleValue()] = &r
		}
	}
	if len(got) < want {
		t.Fatalf("consumed %d distinct readings of sensor %d from %s, want %d", len(got), sensor, topic, want)
	}
	return got
}

func TestIngest_KafkaAllEdgesConsumedBack(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	topic := "e2e.readings." + randHex(4)
	p := Start(t, Options{Args: []string{"--kafka-brokers", brokers, "--kafka-topic", topic, "--kafka-group", "e2e-" + randHex(4)}})
	d := p.NewDevice(p.AdminToken(), "kafka-dev", "double")
	pushAllEdges(t, p, d)
	got := consume(t, brokers, topic, mustID(t, d.SensorID), 7)
	protocols := map[string]int{}
	for v, r := range got {
		if strconv.FormatInt(r.GetDeviceId(), 10) != d.ID || r.GetTimestampNs() == 0 || r.GetReceiveTimeNs() == 0 {
			t.Fatalf("value %v: record %v", v, r)
		}
		protocols[r.GetProtocol()]++
	}
	if protocols["http"] != 2 || protocols["ws"] != 2 || protocols["mqtt"] != 2 || protocols["grpc"] != 1 {
		t.Fatalf("protocols %v", protocols)
	}
	if r := got[1]; r.GetTimestampNs() != 1526717967e9 {
		t.Fatalf("timestamp not normalised: %v", r)
	}

	// An invalid MQTT 3.1.1 payload cannot be refused: it is dead-lettered
	// to the deployment's dead-letter topic (JSON) before the PUBACK.
	o := pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("e2e-dl-" + d.ID).
		SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(4).SetAutoReconnect(false)
	mc := pahov3.NewClient(o)
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	marker := "not-json-" + randHex(4)
	if tk := mc.Publish(d.ID, 1, false, marker); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt publish: %v", tk.Error())
	}
	mc.Disconnect(100)
	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": brokers, "group.id": "e2e-dl-" + randHex(4), "auto.offset.reset": "earliest"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SubscribeTopics([]string{bus.DeadLetterTopicFor(topic)}, nil); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(60 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("dead letter not found in " + bus.DeadLetterTopicFor(topic))
		}
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			continue
		}
		var dl deadletter.Letter
		if err := json.Unmarshal(m.Value, &dl); err != nil {
			t.Fatalf("dead letter is not JSON: %v", err)
		}
		if string(dl.Payload) == marker {
			if strconv.FormatInt(dl.DeviceID, 10) != d.ID || dl.Protocol != "mqtt" || dl.Reason == "" {
				t.Fatalf("dead letter %+v", dl)
			}
			break
		}
	}
}

func TestIngest_KafkaPerSensorTopics(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	p := Start(t, Options{Args: []string{"--kafka-brokers", brokers, "--kafka-topic-mode", "per-sensor", "--kafka-group", "e2e-" + randHex(4)}})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "per-sensor-dev", "double")
	topic := d.ID + "_" + d.SensorID
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":`+d.SensorID+`,"value":1.5}`)); s != 200 {
		t.Fatalf("HTTP: %d\n%s", s, tail(p.Logs(), 20))
	}
	consume(t, brokers, topic, mustID(t, d.SensorID), 1)
	if r := p.Do("DELETE", "/api/devices/"+d.ID+"/sensors/"+d.SensorID, admin, nil); r.Status != 200 {
		t.Fatalf("delete sensor: %d %s", r.Status, r.Body)
	}
	ac, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	eventually(t, func() bool {
		md, err := ac.GetMetadata(nil, true, 5000)
		if err != nil {
			return false
		}
		_, exists := md.Topics[topic]
		return !exists
	})
}

func TestIngest_GatewayRefusalsThroughTheBinary(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "dev-a", "double")
	other := p.NewDevice(admin, "dev-b", "double")
	cases := []struct {
		name, token, ct, body string
		want                  int
	}{
		{"no header", "", "application/json", `{}`, 401},
		{"user token", admin, "application/json", `{"sensor_id":1,"value":1}`, 403},
		{"garbage token", "a.b.c", "application/json", `{}`, 403},
		{"form body", d.Token, "application/x-www-form-urlencoded", `a=b`, 415},
		{"malformed", d.Token, "application/json", `{"sensor_id":`, 400},
		{"other device's sensor", d.Token, "application/json", `{"sensor_id":` + other.SensorID + `,"value":1}`, 422},
		{"not a number", d.Token, "application/json", `{"sensor_id":` + d.SensorID + `,"value":"warm"}`, 422},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if s := postReading(t, p, c.token, c.ct, []byte(c.body)); s != c.want {
				t.Fatalf("status %d, want %d", s, c.want)
			}
		})
	}
	t.Run("rotated key refused within the cache TTL", func(t *testing.T) {
		if r := p.Do("POST", "/api/devices/"+other.ID+"/key/rotate", admin, map[string]string{}); r.Status != 200 {
			t.Skipf("rotate endpoint: %d %s", r.Status, r.Body)
		}
		eventually(t, func() bool {
			return postReading(t, p, other.Token, "application/json", []byte(`{"sensor_id":`+other.SensorID+`,"value":1}`)) == 403
		})
	})
	t.Run("accepted once durable (embedded bus)", func(t *testing.T) {
		s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":"`+d.SensorID+`","value":"2.5"}`))
		if s != 200 {
			t.Fatalf("status %d", s)
		}
	})
}

// TestIngest_EmbeddedAllEdges pushes through every edge of the default
// (embedded bus + embedded store) binary; each push is acked only after the
// pipeline committed it (the query tests read them back).
func TestIngest_EmbeddedAllEdges(t *testing.T) {
	p := Start(t, Options{})
	d := p.NewDevice(p.AdminToken(), "embedded-dev", "double")
	pushAllEdges(t, p, d)
}

// TestIngest_SensorDeletedHereRefusedAtOnce: in one process the ingest path
// and the pipeline share one sensor cache, so a sensor deleted through Core
// is refused by the gateways at once — not accepted for up to the cache's
// 2 s bound and then dead-lettered by the pipeline.
func TestIngest_SensorDeletedHereRefusedAtOnce(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "deleted-here", "double")
	body := `{"sensor_id":` + d.SensorID + `,"value":1.5}`
	if s, b := postJSON(t, p, d.Token, body); s != 200 { // the ingest path now has the sensor cached
		t.Fatalf("ingest: %d %s", s, b)
	}
	if r := p.Do("DELETE", "/api/devices/"+d.ID+"/sensors/"+d.SensorID, admin, nil); r.Status != 200 {
		t.Fatalf("delete sensor: %d %s", r.Status, r.Body)
	}
	if s, b := postJSON(t, p, d.Token, body); s == 200 || !strings.Contains(b, "unknown_sensor") {
		t.Fatalf("a reading for the sensor deleted a moment ago: %d %s, want it refused as unknown_sensor", s, b)
	}
}
