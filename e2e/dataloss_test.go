package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// postJSON sends body to the HTTP gateway and returns status and answer.
func postJSON(t *testing.T, p *Platform, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.HTTP+"/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header["authorization"] = []string{"Bearer " + token}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wsSend sends one text message per body on one WebSocket connection and
// returns the acks.
func wsSend(t *testing.T, p *Platform, token string, bodies ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"Bearer " + token}}})
	if err != nil {
		t.Fatalf("ws dial: %v", err)
	}
	defer c.Close(websocket.StatusNormalClosure, "")
	var acks []string
	for _, b := range bodies {
		if err := c.Write(ctx, websocket.MessageText, []byte(b)); err != nil {
			t.Fatal(err)
		}
		_, ack, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("ws ack: %v", err)
		}
		acks = append(acks, string(ack))
	}
	return acks
}

// mosquittoPub publishes msg once with mosquitto_pub (one connection:
// CONNECT, PUBLISH, DISCONNECT) at the given QoS.
func mosquittoPub(t *testing.T, p *Platform, d Device, qos int, version, msg string) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatal("mosquitto_pub not installed: run scripts/install-test-tools.sh")
	}
	host, port, _ := net.SplitHostPort(p.MQTT)
	if out, err := exec.Command(bin, "-h", host, "-p", port, "-V", version, "-q", strconv.Itoa(qos), "-u", "JWT", "-P", d.Token,
		"-t", d.ID, "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
}

// mqttjs runs e2e/mqttjs/producer.js (mqtt.js, installed by scripts/install-mqttjs.sh):
// arrays of 2-5 readings sharing a millisecond, QoS 0, then end().
func mqttjs(t *testing.T, p *Platform, d Device, arrays, first, version int) int {
	t.Helper()
	return nodeProducer(t, "mqttjs/producer.js", "mqtt://"+p.MQTT, d.Token, d.ID, d.SensorID,
		strconv.Itoa(arrays), strconv.Itoa(first), strconv.Itoa(version))
}

// wsjs runs e2e/mqttjs/wsproducer.js (Node.js's ws library, installed by
// scripts/install-mqttjs.sh): arrays of 2-5 readings sharing a millisecond
// without timestamps, sent at once, the last one in fragments; it checks
// the acks and returns the readings accepted.
func wsjs(t *testing.T, p *Platform, d Device, arrays, first int) int {
	t.Helper()
	return nodeProducer(t, "mqttjs/wsproducer.js", "ws://"+p.WS+"/", d.Token, d.SensorID,
		strconv.Itoa(arrays), strconv.Itoa(first))
}

// nodeProducer runs a Node.js producer of e2e/mqttjs (its libraries
// installed first) and returns the number it prints: the readings it sent.
func nodeProducer(t *testing.T, script string, args ...string) int {
	t.Helper()
	if out, err := exec.Command("../scripts/install-mqttjs.sh").CombinedOutput(); err != nil {
		t.Fatalf("install mqtt.js and ws: %v\n%s", err, out)
	}
	out, err := exec.Command("node", append([]string{script}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatalf("%s said %q", script, out)
	}
	return n
}

// storedValues returns the double values of a sensor's readings in the
// order the store lists them (timestamp, then position in their batch).
func storedValues(t *testing.T, p *Platform, token, sensor string, want int) []float64 {
	t.Helper()
	rs := waitReadings(t, p, token, sensor, want)
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i], _ = r["double_value"].(float64)
	}
	return out
}

func sorted(vs []float64) []float64 {
	out := append([]float64(nil), vs...)
	sort.Float64s(out)
	return out
}

func seq(from, to int) []float64 {
	var out []float64
	for v := from; v <= to; v++ {
		out = append(out, float64(v))
	}
	return out
}

// sameInstantEveryEdge sends arrays whose readings share one instant over
// HTTP, WebSocket, MQTT (mosquitto_pub QoS 1 and mqtt.js QoS 0), replays
// each batch, and checks every reading is stored exactly once, in order.
func sameInstantEveryEdge(t *testing.T, p *Platform) {
	admin := p.AdminToken()
	d := p.NewDevice(admin, "same-instant", "double")
	batch := func(ts int64, vals ...int) string {
		var items []string
		for _, v := range vals {
			items = append(items, fmt.Sprintf(`{"sensor_id":%s,"timestamp":%d,"value":%d}`, d.SensorID, ts, v))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	ns := int64(1_764_000_000_000_000_000)
	httpBatch := batch(ns, 1, 2, 3)
	for range 2 { // the second is a device retrying after a lost ack
		if s, body := postJSON(t, p, d.Token, httpBatch); s != 200 || !strings.Contains(body, `"accepted":3`) {
			t.Fatalf("HTTP same-instant batch: %d %s", s, body)
		}
	}
	wsBatch := batch(ns+1000, 4, 5, 6)
	for _, ack := range wsSend(t, p, d.Token, wsBatch, wsBatch) {
		if !strings.Contains(ack, `"status":200`) || !strings.Contains(ack, `"accepted":3`) {
			t.Fatalf("WebSocket ack: %s", ack)
		}
	}
	mqttBatch := batch(ns+2000, 7, 8, 9)
	mosquittoPub(t, p, d, 1, "mqttv311", mqttBatch)
	mosquittoPub(t, p, d, 1, "mqttv311", mqttBatch)
	if got := storedValues(t, p, admin, d.SensorID, 9); fmt.Sprint(got) != fmt.Sprint(seq(1, 9)) {
		t.Fatalf("stored %v, want every reading once in the order sent %v", got, seq(1, 9))
	}
	// mqtt.js like the original Node producer: 40 arrays of 2-5 readings
	// built in one millisecond (later instants than the above).
	n := mqttjs(t, p, d, 40, 10, 3)
	got := storedValues(t, p, admin, d.SensorID, 9+n)
	if len(got) != 9+n {
		t.Fatalf("mqtt.js published %d readings, %d stored", n, len(got)-9)
	}
	// Arrays built in the same millisecond share their instant; readings
	// of one instant from different batches have no defined order.
	if vs := sorted(got[9:]); fmt.Sprint(vs) != fmt.Sprint(seq(10, 9+n)) {
		t.Errorf("mqtt.js readings stored as %v, want %v", vs, seq(10, 9+n))
	}
	// Node.js's ws library with its defaults: arrays built in one
	// millisecond without timestamps, all sent before the first ack.
	m := wsjs(t, p, d, 40, 10+n)
	got = storedValues(t, p, admin, d.SensorID, 9+n+m)
	if len(got) != 9+n+m {
		t.Fatalf("ws accepted %d readings, %d stored", m, len(got)-9-n)
	}
	if vs := sorted(got[9+n:]); fmt.Sprint(vs) != fmt.Sprint(seq(10+n, 9+n+m)) {
		t.Errorf("ws readings stored as %v, want %v", vs, seq(10+n, 9+n+m))
	}
}

func TestIngest_SameInstantReadingsAllKeptReplaysNeverDuplicate(t *testing.T) {
	sameInstantEveryEdge(t, Start(t, Options{}))
}

func TestIngest_SameInstantReadingsAllKeptKafkaOpenSearch(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	osURL := testenv.OpenSearchURL(t)
	suffix := randHex(4)
	sameInstantEveryEdge(t, Start(t, Options{Args: []string{"--kafka-brokers", brokers, "--kafka-topic", "iot.e2e.si." + suffix,
		"--kafka-group", "e2e-si-" + suffix, "--opensearch-url", osURL, "--opensearch-prefix", osPrefix(t, "e2e-si-"+suffix)}}))
}

// TestIngest_UntimedReadingsGetDistinctIncreasingInstants: readings without
// a timestamp are each kept, in the order sent, across batches, edges,
// connections and a restart.
func TestIngest_UntimedReadingsGetDistinctIncreasingInstants(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "untimed", "double")
	untimed := func(vals ...int) string {
		var items []string
		for _, v := range vals {
			items = append(items, fmt.Sprintf(`{"sensor_id":%s,"value":%d}`, d.SensorID, v))
		}
		return "[" + strings.Join(items, ",") + "]"
	}
	if s, body := postJSON(t, p, d.Token, untimed(1, 2, 3)); s != 200 || !strings.Contains(body, `"accepted":3`) {
		t.Fatalf("HTTP: %d %s", s, body)
	}
	if s, body := postJSON(t, p, d.Token, untimed(4, 5)); s != 200 {
		t.Fatalf("HTTP: %d %s", s, body)
	}
	wsSend(t, p, d.Token, untimed(6, 7), untimed(8))
	mosquittoPub(t, p, d, 1, "mqttv311", untimed(9, 10, 11))
	storedValues(t, p, admin, d.SensorID, 11)
	p.Stop()
	p.start()
	if s, body := postJSON(t, p, d.Token, untimed(12, 13)); s != 200 {
		t.Fatalf("HTTP after restart: %d %s", s, body)
	}
	rs := waitReadings(t, p, admin, d.SensorID, 13)
	var got []float64
	last := ""
	for _, r := range rs {
		v, _ := r["double_value"].(float64)
		got = append(got, v)
		ts, _ := r["timestamp"].(string)
		tm, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			t.Fatalf("timestamp %q: %v", ts, err)
		}
		if cur := tm.Format("2006-01-02T15:04:05.000000000"); last != "" && cur <= last {
			t.Errorf("instant %s of value %v is not after %s", cur, v, last)
		} else {
			last = cur
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(seq(1, 13)) {
		t.Fatalf("stored %v, want %v", got, seq(1, 13))
	}
}

// TestMQTT_QoS0PublishThenDisconnectIsStored: a publish the broker fully
// received is ingested whatever the client does next.
func TestMQTT_QoS0PublishThenDisconnectIsStored(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "qos0", "double")
	const runs = 20
	for i := 1; i <= runs; i++ {
		version := []string{"mqttv31", "mqttv311", "mqttv5"}[i%3]
		mosquittoPub(t, p, d, 0, version, fmt.Sprintf(`{"sensor_id":%s,"timestamp":%d,"value":%d}`, d.SensorID, 1_700_000_000+i, i))
	}
	if got := storedValues(t, p, admin, d.SensorID, runs); fmt.Sprint(got) != fmt.Sprint(seq(1, runs)) {
		t.Fatalf("after %d one-shot mosquitto_pub -q 0 runs stored %v", runs, got)
	}
	n := 0
	for _, version := range []int{3, 4, 5} {
		n += mqttjs(t, p, d, 10, runs+1+n, version)
	}
	if got := sorted(storedValues(t, p, admin, d.SensorID, runs+n)); fmt.Sprint(got) != fmt.Sprint(seq(1, runs+n)) {
		t.Fatalf("mqtt.js published %d readings at QoS 0 after %d mosquitto_pub ones; stored %v", n, runs, got)
	}
	if strings.Contains(p.Logs(), "not durable") {
		t.Errorf("logs report readings not durable:\n%s", tail(p.Logs(), 20))
	}
}
