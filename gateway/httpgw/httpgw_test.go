package httpgw_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/iotplatform/iotplatform/gateway/httpgw"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/services/ingest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

func TestGateway_StatusCodes(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 200 * time.Millisecond})
	srv := httptest.NewServer(httpgw.New(e.Log, e.Verifier, e.Service, httpgw.Config{MaxBody: 1024}))
	defer srv.Close()
	devA := e.DeviceToken(t, ingesttest.DeviceA)
	pb, _ := proto.Marshal(&ingestv1.ReadingBatch{Readings: []*ingestv1.Reading{{SensorId: 11, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 1}}}})
	cases := []struct {
		name     string
		header   string // authorization header name, value
		auth     string
		ct       string
		body     string
		block    bool
		want     int
		accepted int
	}{
		{name: "success lowercase header", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":"11","timestamp":1526717967,"value":"1.5"}`, want: 200, accepted: 1},
		{name: "success array", header: "AUTHORIZATION", auth: "bearer " + devA, ct: "application/json; charset=utf-8", body: `[{"sensor_id":11,"value":1},{"sensor_id":12,"value":2}]`, want: 200, accepted: 2},
		{name: "protobuf", header: "Authorization", auth: "Bearer " + devA, ct: "application/x-protobuf", body: string(pb), want: 200, accepted: 1},
		{name: "missing header", ct: "application/json", body: `{}`, want: 401},
		{name: "malformed header", header: "authorization", auth: "Token " + devA, ct: "application/json", body: `{}`, want: 401},
		{name: "invalid token", header: "authorization", auth: "Bearer abc.def.ghi", ct: "application/json", body: `{}`, want: 403},
		{name: "user token", header: "authorization", auth: "Bearer " + e.Token(t, authn.KindUser, 1), ct: "application/json", body: `{}`, want: 403},
		{name: "malformed JSON", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":`, want: 400},
		{name: "missing value", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":11}`, want: 400},
		{name: "too large", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `[` + strings.Repeat(`{"sensor_id":11,"value":1},`, 100) + `]`, want: 413},
		{name: "unsupported type", header: "authorization", auth: "Bearer " + devA, ct: "text/plain", body: `{}`, want: 415},
		{name: "unknown sensor", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":999,"value":1}`, want: 422},
		{name: "other device's sensor", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":21,"value":1}`, want: 422},
		{name: "uncoercible", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":13,"value":"maybe"}`, want: 422},
		{name: "bus blocked", header: "authorization", auth: "Bearer " + devA, ct: "application/json", body: `{"sensor_id":11,"value":1}`, block: true, want: 503},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.block {
				defer e.Sink.Block()()
			}
			before := len(e.Sink.Records())
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader(c.body))
			req.Header.Set("Content-Type", c.ct)
			if c.header != "" {
				req.Header[c.header] = []string{c.auth}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var r httpgw.Response
			_ = json.NewDecoder(resp.Body).Decode(&r)
			if resp.StatusCode != c.want {
				t.Fatalf("status %d (%+v), want %d", resp.StatusCode, r, c.want)
			}
			if r.Accepted != c.accepted {
				t.Fatalf("accepted %d, want %d", r.Accepted, c.accepted)
			}
			if c.want == 200 && len(e.Sink.Records())-before != c.accepted {
				t.Fatalf("acked %d but %d durable", c.accepted, len(e.Sink.Records())-before)
			}
			if c.want == 422 && len(r.Errors) == 0 {
				t.Fatal("422 without item errors")
			}
			if c.want != 200 && !c.block && len(e.Sink.Records()) != before {
				t.Fatal("refused request was stored")
			}
		})
	}
}

func TestGateway_RevokedTokenRefusedAfterCacheTTL(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	srv := httptest.NewServer(httpgw.New(e.Log, e.Verifier, e.Service, httpgw.Config{}))
	defer srv.Close()
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	post := func() int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, bytes.NewReader([]byte(`{"sensor_id":11,"value":1}`)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post(); s != 200 {
		t.Fatalf("status %d", s)
	}
	e.Sensors.Rotate(ingesttest.DeviceA)
	deadline := time.Now().Add(10 * time.Second) // far above the 50 ms cache TTL
	for post() != 403 {
		if time.Now().After(deadline) {
			t.Fatal("rotated token still accepted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestGateway_KafkaDownIs503 checks the gateway refuses (never acks) when
// the Kafka bus cannot take the readings within the publish timeout.
func TestGateway_KafkaDownIs503(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	p, err := buskafka.NewProducer(e.Log, buskafka.Config{Brokers: "127.0.0.1:1", PublishTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	svc := ingest.New(e.Log, ingest.Config{PublishTimeout: 300 * time.Millisecond}, e.Sensors, p, p, nil)
	srv := httptest.NewServer(httpgw.New(e.Log, e.Verifier, svc, httpgw.Config{}))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"sensor_id":11,"value":1}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+e.DeviceToken(t, ingesttest.DeviceA))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	for _, leak := range []string{"kafka", "127.0.0.1", "broker", "bus"} {
		if strings.Contains(strings.ToLower(string(body)), leak) {
			t.Fatalf("503 answer leaks the cause (%s): %s", leak, body)
		}
	}
}
