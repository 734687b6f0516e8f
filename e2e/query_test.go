package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/testenv"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

func queryClient(p *Platform, token string) queryv1connect.QueryServiceClient {
	return iot.New(p.URL(), iot.WithHTTP2(), iot.WithToken(token)).Query
}

// readingsREST lists every reading of a sensor through REST pages.
func readingsREST(t *testing.T, p *Platform, token, sensor, query string) []map[string]any {
	t.Helper()
	var out []map[string]any
	tok := ""
	for range 1000 {
		r := p.Do("GET", "/api/sensors/"+sensor+"/readings?limit=10000&"+query+"&page_token="+tok, token, nil)
		if r.Status != 200 {
			t.Fatalf("readings: %d %s", r.Status, r.Body)
		}
		rs, _ := r.JSON["readings"].([]any)
		for _, x := range rs {
			out = append(out, x.(map[string]any))
		}
		if tok = r.Str("next_page_token"); tok == "" {
			return out
		}
	}
	t.Fatal("paging did not end")
	return nil
}

// waitReadings polls until the sensor has at least n readings (OpenSearch
// makes writes visible within its refresh interval) or 60s pass.
func waitReadings(t *testing.T, p *Platform, token, sensor string, n int) []map[string]any {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := readingsREST(t, p, token, sensor, "")
		if len(rs) >= n || time.Now().After(deadline) {
			return rs
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func values(rs []map[string]any) []float64 {
	var vs []float64
	for _, r := range rs {
		v, _ := r["double_value"].(float64)
		vs = append(vs, v)
	}
	sort.Float64s(vs)
	return vs
}

// readBackAllEdges pushes one reading through every edge and reads them
// back through Subscribe, ListReadings, Latest and Aggregate.
func readBackAllEdges(t *testing.T, p *Platform) {
	admin := p.AdminToken()
	d := p.NewDevice(admin, "query-e2e", "double")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	qc := queryClient(p, admin)
	stream, err := qc.Subscribe(ctx, &queryv1.SubscribeRequest{SensorId: []int64{mustID(t, d.SensorID)}, Since: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatalf("subscribe: %v", stream.Err())
	}
	pushAllEdges(t, p, d)

	rs := waitReadings(t, p, admin, d.SensorID, 7)
	if got := fmt.Sprint(values(rs)); got != "[1 2 3 4 5 6 7]" {
		t.Fatalf("ListReadings values = %s, want 1..7 (one per edge)", got)
	}
	if rs[0]["timestamp"] != "2018-05-19T08:19:27Z" {
		t.Errorf("oldest reading timestamp %v, want the seconds timestamp 1526717967 as RFC 3339", rs[0]["timestamp"])
	}

	var live []float64
	for len(live) < 7 && stream.Receive() {
		for _, r := range stream.Msg().GetReadings() {
			live = append(live, r.GetDoubleValue())
		}
	}
	sort.Float64s(live)
	if fmt.Sprint(live) != "[1 2 3 4 5 6 7]" {
		t.Errorf("Subscribe delivered %v (err %v), want 1..7", live, stream.Err())
	}

	l := p.Do("GET", "/api/sensors/latest?sensor_id="+d.SensorID, admin, nil)
	if l.Status != 200 || !strings.Contains(string(l.Body), `"double_value"`) {
		t.Errorf("latest: %d %s", l.Status, l.Body)
	}
	dev := p.Do("GET", "/api/sensors/latest?sensor_id="+d.SensorID, d.Token, nil)
	if dev.Status != 200 {
		t.Errorf("device reading its own latest: %d %s", dev.Status, dev.Body)
	}
	if r := p.Do("GET", "/api/sensors/"+d.SensorID+"/readings", d.Token, nil); r.Status != 403 {
		t.Errorf("device listing readings: %d, want 403", r.Status)
	}

	agg, err := qc.Aggregate(ctx, &queryv1.AggregateRequest{SensorId: mustID(t, d.SensorID), From: "2018-05-19T00:00:00Z", Interval: "1d", Fn: []string{"sum", "count", "max"}})
	if err != nil {
		t.Fatal(err)
	}
	var count int64
	var sum float64
	for _, b := range agg.GetBuckets() {
		count += b.GetCount()
		sum += b.GetSum()
	}
	if count != 7 || sum != 28 {
		t.Errorf("aggregate count %d sum %v, want 7 and 28", count, sum)
	}
}

func TestQuery_EmbeddedAllEdgesReadBack(t *testing.T) {
	readBackAllEdges(t, Start(t, Options{}))
}

func TestQuery_KafkaOpenSearchAllEdgesReadBack(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	osURL := testenv.OpenSearchURL(t)
	suffix := randHex(4)
	p := Start(t, Options{Args: []string{"--kafka-brokers", brokers, "--kafka-topic", "iot.e2e.q." + suffix,
		"--kafka-group", "e2e-q-" + suffix, "--opensearch-url", osURL, "--opensearch-prefix", osPrefix(t, "e2e-"+suffix)}})
	readBackAllEdges(t, p)

	// The search proxy answers on OpenSearch, restricted to the sensor.
	admin := p.AdminToken()
	d := p.NewDevice(admin, "search", "double")
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":"`+d.SensorID+`","value":42}`)); s != 200 {
		t.Fatalf("push: %d", s)
	}
	waitReadings(t, p, admin, d.SensorID, 1)
	r := p.Do("POST", "/api/consumers/consume/"+d.SensorID+"/_search", admin, `{"query":{"match_all":{}}}`)
	if r.Status != 200 || !strings.Contains(string(r.Body), `"value_double":42`) || strings.Count(string(r.Body), `"sensor_id"`) != 1 {
		t.Errorf("search proxy: %d %s", r.Status, r.Body)
	}

	// MQTT 3 dead letters travel through the Kafka dead-letter topic into
	// the store.
	publishInvalidMQTT3(t, p, d)
	if dls := waitDeadLetters(t, p, admin, d); len(dls) == 0 {
		t.Errorf("no dead letter listed after an invalid MQTT 3 payload in Kafka mode")
	}
}

func TestQuery_SecondsAndMillisecondsLandOnTheSameInstant(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "ts", "double")
	push := func(body string) {
		t.Helper()
		if s := postReading(t, p, d.Token, "application/json", []byte(body)); s != 200 {
			t.Fatalf("push %s: %d", body, s)
		}
	}
	// The same reading in seconds and in milliseconds is one reading: the
	// second is a replay of the first (docs/INGEST.md "Identity").
	push(`{"sensor_id":"` + d.SensorID + `","timestamp":1526717967,"value":1.5}`)
	push(`{"sensor_id":"` + d.SensorID + `","timestamp":1526717967000,"value":"1.5"}`)
	rs := readingsREST(t, p, admin, d.SensorID, "from=1526717967000&to=2018-05-19T08:19:28Z")
	if len(rs) != 1 || rs[0]["double_value"] != 1.5 || rs[0]["timestamp"] != "2018-05-19T08:19:27Z" {
		t.Fatalf("readings = %v, want one reading at 08:19:27 (the numeric string coerced to the same value)", rs)
	}
	// Another value at that instant is kept beside it, never replacing it.
	push(`{"sensor_id":"` + d.SensorID + `","timestamp":1526717967000,"value":"2.5"}`)
	rs = readingsREST(t, p, admin, d.SensorID, "from=1526717967000&to=2018-05-19T08:19:28Z")
	if vs := values(rs); len(rs) != 2 || vs[0] != 1.5 || vs[1] != 2.5 || rs[0]["timestamp"] != rs[1]["timestamp"] {
		t.Fatalf("readings = %v, want 1.5 and 2.5 at the same instant", rs)
	}
}

// publishInvalidMQTT3 sends a payload the double sensor cannot take over
// MQTT 3.1.1, which has no negative PUBACK: it must be dead-lettered.
func publishInvalidMQTT3(t *testing.T, p *Platform, d Device) {
	t.Helper()
	o := pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("e2e-dl-" + d.ID).
		SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(4).SetAutoReconnect(false)
	mc := pahov3.NewClient(o)
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	if tk := mc.Publish(d.ID, 1, false, `{"sensor_id":"`+d.SensorID+`","value":"not a number"}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt publish: %v", tk.Error())
	}
	mc.Disconnect(100)
}

// waitDeadLetters polls ListDeadLetters of the device until one appears or
// 60s pass (Kafka mode goes through the dead-letter topic).
func waitDeadLetters(t *testing.T, p *Platform, token string, d Device) []*queryv1.DeadLetter {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := queryClient(p, token).ListDeadLetters(context.Background(), &queryv1.ListDeadLettersRequest{DeviceId: mustID(t, d.ID)})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.GetDeadLetters()) > 0 || time.Now().After(deadline) {
			return res.GetDeadLetters()
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestQuery_DeadLetteredMQTT3PayloadIsListed(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "dl", "double")
	publishInvalidMQTT3(t, p, d)
	dls := waitDeadLetters(t, p, admin, d)
	if len(dls) != 1 || dls[0].GetReason() == "" || dls[0].GetProtocol() == "" {
		t.Fatalf("dead letters = %v, want the refused MQTT payload with its reason", dls)
	}
}

// TestQuery_KillDashNineKeepsEveryAcknowledgedReading pushes batches from
// several clients on embedded defaults (write-ahead log bus, SQLite store),
// kills the process with SIGKILL mid-stream three times, restarting it each
// time, and checks that every reading whose batch got a 200 is stored
// exactly once (the log replays what the store had not applied).
func TestQuery_KillDashNineKeepsEveryAcknowledgedReading(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "crash", "double")
	var mu sync.Mutex
	var acked []int64 // timestamps in ms
	var seq atomic.Int64
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for round := range 3 {
		var roundAcked atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				client := &http.Client{Timeout: 10 * time.Second}
				for {
					select {
					case <-stop:
						return
					default:
					}
					var b strings.Builder
					var ts []int64
					b.WriteString("[")
					for i := range 50 {
						ms := base + seq.Add(1)
						ts = append(ts, ms)
						if i > 0 {
							b.WriteString(",")
						}
						fmt.Fprintf(&b, `{"sensor_id":%s,"timestamp":%d,"value":%d}`, d.SensorID, ms, ms%1000)
					}
					b.WriteString("]")
					req, _ := http.NewRequest(http.MethodPost, "http://"+p.HTTP+"/", strings.NewReader(b.String()))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+d.Token)
					resp, err := client.Do(req)
					if err != nil {
						continue // the process is gone: not acknowledged
					}
					resp.Body.Close()
					if resp.StatusCode == 200 {
						mu.Lock()
						acked = append(acked, ts...)
						mu.Unlock()
						roundAcked.Add(int64(len(ts)))
					}
				}
			}()
		}
		for roundAcked.Load() < 5000 {
			time.Sleep(10 * time.Millisecond)
		}
		p.Kill()
		close(stop)
		wg.Wait()
		t.Logf("round %d: %d readings acknowledged before kill -9", round, roundAcked.Load())
		p.Restart()
	}
	// The store catches up with the log after the restart.
	deadline := time.Now().Add(60 * time.Second)
	for {
		list := readingsREST(t, p, admin, d.SensorID, "")
		stored := map[int64]bool{}
		for _, r := range list {
			ts, err := time.Parse(time.RFC3339Nano, r["timestamp"].(string))
			if err != nil {
				t.Fatal(err)
			}
			stored[ts.UnixMilli()] = true
		}
		if len(stored) != len(list) {
			t.Fatalf("%d readings listed but only %d distinct: a replay duplicated readings", len(list), len(stored))
		}
		missing := 0
		for _, ms := range acked {
			if !stored[ms] {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("%d acknowledged readings all present exactly once after 3 × kill -9 (%d stored)", len(acked), len(stored))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d acknowledged readings missing after kill -9 and restart", missing, len(acked))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestQuery_OpenSearchPerSensorIndexFollowsTheSensor(t *testing.T) {
	osURL := testenv.OpenSearchURL(t)
	prefix := osPrefix(t, "e2e-ps-"+randHex(4))
	p := Start(t, Options{Args: []string{"--opensearch-url", osURL, "--opensearch-index-mode", "per-sensor", "--opensearch-prefix", prefix}})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "ps", "double")
	index := osURL + "/" + prefix + "-" + d.ID + "_" + d.SensorID
	status := func() int {
		res, err := http.Get(index)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if s := status(); s != 200 {
		t.Fatalf("index %s after sensor creation: %d, want 200", index, s)
	}
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":"`+d.SensorID+`","value":"3.25"}`)); s != 200 {
		t.Fatalf("push: %d", s)
	}
	if rs := waitReadings(t, p, admin, d.SensorID, 1); len(rs) != 1 || rs[0]["double_value"] != 3.25 {
		t.Fatalf("readings = %v", rs)
	}
	if r := p.Do("DELETE", "/api/devices/"+d.ID+"/sensors/"+d.SensorID, admin, nil); r.Status != 200 {
		t.Fatalf("delete sensor: %d %s", r.Status, r.Body)
	}
	if s := status(); s != 404 {
		t.Errorf("index after sensor deletion: %d, want 404", s)
	}
}

// TestQuery_ConsumerGrantAndRevocation reads a granted sensor with a
// consumer key, revokes the grant and checks it stops working within the
// documented bound (5 s query cache), while another user never could.
func TestQuery_ConsumerGrantAndRevocation(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "granted", "double")
	if s := postReading(t, p, d.Token, "application/json", []byte(`{"sensor_id":"`+d.SensorID+`","value":1}`)); s != 200 {
		t.Fatalf("push: %d", s)
	}
	c := p.Do("POST", "/api/consumers", admin, `{"name":"reader"}`)
	cid := c.Str("result.id")
	if c.Status != 200 || cid == "" {
		t.Fatalf("create consumer: %d %s", c.Status, c.Body)
	}
	if g := p.Do("POST", "/api/consumers/"+cid+"/sensors", admin, `{"sensor_id":"`+d.SensorID+`"}`); g.Status != 200 {
		t.Fatalf("grant: %d %s", g.Status, g.Body)
	}
	key := p.Do("GET", "/api/consumers/"+cid+"/key", admin, nil).Str("token")
	path := "/api/sensors/" + d.SensorID + "/readings"
	if r := p.Do("GET", path, key, nil); r.Status != 200 || !strings.Contains(string(r.Body), `"double_value":1`) {
		t.Fatalf("granted consumer: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/api/sensors/latest?sensor_id="+d.SensorID, key, nil); r.Status != 200 {
		t.Fatalf("granted consumer latest: %d %s", r.Status, r.Body)
	}
	if r := p.Do("POST", "/api/consumers/consume/"+d.SensorID+"/_search", key, `{}`); r.Status != 501 {
		t.Errorf("search proxy on the embedded store: %d %s, want 501", r.Status, r.Body)
	}
	if r := p.Do("DELETE", "/api/consumers/"+cid+"/sensors/"+d.SensorID, admin, nil); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	revoked := time.Now()
	for {
		r := p.Do("GET", path, key, nil)
		if r.Status == 403 || r.Status == 401 {
			t.Logf("revocation effective after %v", time.Since(revoked).Round(time.Millisecond))
			break
		}
		if time.Since(revoked) > 7*time.Second {
			t.Fatalf("revoked consumer still reads after %v (documented bound 5 s): %d", time.Since(revoked), r.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := p.Do("GET", path, "", nil); r.Status != 401 {
		t.Errorf("anonymous: %d, want 401", r.Status)
	}
}
