package ingest_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/services/ingest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

func TestIngestPayload_JSON(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	cases := []struct {
		name  string
		body  string
		class ingest.Class // 0: accepted
		code  string
		check func(t *testing.T, r *busv1.Record)
	}{
		{name: "original contract", body: `{"sensor_id": "14", "timestamp": 1526717967, "value": "91827364"}`,
			check: func(t *testing.T, r *busv1.Record) {
				if r.GetStringValue() != "91827364" || r.GetTimestampNs() != 1526717967e9 {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "numeric string to double", body: `{"sensor_id": 11, "timestamp": 1526717967123, "value": "21.5"}`,
			check: func(t *testing.T, r *busv1.Record) {
				if r.GetDoubleValue() != 21.5 || r.GetTimestampNs() != 1526717967123e6 {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "long from integral float", body: `{"sensor_id": 12, "value": 42.0}`,
			check: func(t *testing.T, r *busv1.Record) {
				if r.GetLongValue() != 42 || r.GetTimestampNs() < r.GetReceiveTimeNs() {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "bool", body: `{"sensor_id": 13, "timestamp": "2018-05-19T08:19:27Z", "value": true}`,
			check: func(t *testing.T, r *busv1.Record) {
				if !r.GetBoolValue() || r.GetTimestampNs() != 1526717967e9 {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "object", body: `{"sensor_id": 15, "value": {"a": 1, "b": [true]}}`,
			check: func(t *testing.T, r *busv1.Record) {
				if r.GetObjectValue().GetFields()["a"].GetNumberValue() != 1 {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "number to string sensor", body: `[{"sensor_id": 14, "value": 3.25}]`,
			check: func(t *testing.T, r *busv1.Record) {
				if r.GetStringValue() != "3.25" {
					t.Fatalf("got %v", r)
				}
			}},
		{name: "malformed JSON", body: `{"sensor_id": 11,`, class: ingest.ClassMalformed, code: ingest.CodeMalformed},
		{name: "not an object", body: `42`, class: ingest.ClassMalformed, code: ingest.CodeMalformed},
		{name: "empty array", body: `[]`, class: ingest.ClassMalformed, code: ingest.CodeMissingField},
		{name: "missing sensor", body: `{"value": 1}`, class: ingest.ClassMalformed, code: ingest.CodeMissingField},
		{name: "missing value", body: `{"sensor_id": 11}`, class: ingest.ClassMalformed, code: ingest.CodeMissingField},
		{name: "bad sensor id", body: `{"sensor_id": "x", "value": 1}`, class: ingest.ClassMalformed, code: ingest.CodeInvalidSensorID},
		{name: "bad timestamp", body: `{"sensor_id": 11, "timestamp": "yesterday", "value": 1}`, class: ingest.ClassMalformed, code: ingest.CodeInvalidTimestamp},
		{name: "unknown sensor", body: `{"sensor_id": 999, "value": 1}`, class: ingest.ClassRejected, code: ingest.CodeUnknownSensor},
		{name: "other device's sensor", body: `{"sensor_id": 21, "value": 1}`, class: ingest.ClassRejected, code: ingest.CodeUnknownSensor},
		{name: "uncoercible", body: `{"sensor_id": 11, "value": "warm"}`, class: ingest.ClassRejected, code: ingest.CodeInvalidValue},
		{name: "object to long", body: `{"sensor_id": 12, "value": {}}`, class: ingest.ClassRejected, code: ingest.CodeInvalidValue},
		{name: "fraction to long", body: `{"sensor_id": 12, "value": 1.5}`, class: ingest.ClassRejected, code: ingest.CodeInvalidValue},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := len(e.Sink.Records())
			n, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(c.body))
			if c.class == 0 {
				if err != nil {
					t.Fatalf("IngestPayload: %v", err)
				}
				recs := e.Sink.Records()[before:]
				if n != 1 || len(recs) != 1 {
					t.Fatalf("accepted %d, stored %d; want 1", n, len(recs))
				}
				if r := recs[0]; r.GetDeviceId() != ingesttest.DeviceA || r.GetProtocol() != "http" {
					t.Fatalf("record %v", r)
				}
				c.check(t, recs[0])
				return
			}
			var be *ingest.BatchError
			if !errors.As(err, &be) || be.Class != c.class || be.Items[0].Code != c.code {
				t.Fatalf("err = %#v, want class %d code %s", err, c.class, c.code)
			}
			if len(e.Sink.Records()) != before {
				t.Fatal("refused batch was published")
			}
		})
	}
}

func TestIngest_BatchIsAllOrNothing(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	body := `[{"sensor_id": 11, "value": 1}, {"sensor_id": 21, "value": 2}, {"sensor_id": 12, "value": "x"}, {"sensor_id": 13, "value": false}]`
	_, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(body))
	var be *ingest.BatchError
	if !errors.As(err, &be) || len(be.Items) != 2 || be.Items[0].Index != 1 || be.Items[1].Index != 2 {
		t.Fatalf("err = %v, want items 1 and 2", err)
	}
	if n := len(e.Sink.Records()); n != 0 {
		t.Fatalf("%d records stored from a refused batch", n)
	}
}

func TestIngest_Protobuf(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	ts := time.Unix(1526717967, 42)
	b, _ := proto.Marshal(&ingestv1.ReadingBatch{Readings: []*ingestv1.Reading{
		{SensorId: 11, Timestamp: timestamppb.New(ts), Value: &ingestv1.Reading_LongValue{LongValue: 3}},
		{SensorId: 12, Value: &ingestv1.Reading_StringValue{StringValue: "17"}},
		{SensorId: 13, Value: &ingestv1.Reading_BoolValue{BoolValue: true}},
		{SensorId: 14, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 2.5}},
		{SensorId: 15, Value: &ingestv1.Reading_ObjectValue{ObjectValue: &structpb.Struct{}}},
	}})
	n, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolMQTT, ingest.FormatProto, b)
	if err != nil || n != 5 {
		t.Fatalf("IngestPayload = %d, %v", n, err)
	}
	r := e.Sink.Records()
	if r[0].GetDoubleValue() != 3 || r[0].GetTimestampNs() != ts.UnixNano() || r[1].GetLongValue() != 17 ||
		!r[2].GetBoolValue() || r[3].GetStringValue() != "2.5" || r[4].GetObjectValue() == nil {
		t.Fatalf("records %v", r)
	}
	if _, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolMQTT, ingest.FormatProto, []byte{0xff, 0xff}); err == nil {
		t.Fatal("garbage protobuf accepted")
	}
}

func TestIngest_UnavailableWhenBusBlocks(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 100 * time.Millisecond})
	unblock := e.Sink.Block()
	defer unblock()
	_, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(`{"sensor_id":11,"value":1}`))
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
}

func TestIngest_TooLarge(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	svc := ingest.New(e.Log, ingest.Config{MaxBatch: 2}, e.Sensors, e.Bus, nil, nil)
	_, err := svc.IngestPayload(context.Background(), 1, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(`[{"sensor_id":11,"value":1},{"sensor_id":11,"value":1},{"sensor_id":11,"value":1}]`))
	var be *ingest.BatchError
	if !errors.As(err, &be) || be.Class != ingest.ClassTooLarge {
		t.Fatalf("err = %v", err)
	}
}

func TestDeadLetter_RecordsReason(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	_, reason := e.Service.IngestPayload(context.Background(), 1, ingest.ProtocolMQTT, ingest.FormatJSON, []byte(`nope`))
	if err := e.Service.DeadLetter(context.Background(), 1, ingest.ProtocolMQTT, []byte(`nope`), reason); err != nil {
		t.Fatal(err)
	}
	dls := e.Sink.DeadLetters()
	if len(dls) != 1 || string(dls[0].Payload) != "nope" || !strings.Contains(dls[0].Reason, "JSON") || dls[0].DeviceID != 1 {
		t.Fatalf("dead letters %+v", dls)
	}
}

func FuzzDecodeJSON(f *testing.F) {
	for _, s := range []string{
		`{"sensor_id": "4", "timestamp": 1526717967, "value": "91827364"}`,
		`[{"sensor_id": 11, "timestamp": "2018-05-19T08:19:27Z", "value": 1.5}]`,
		`{"sensor_id": 15, "value": {"a": [1, null]}}`, `[]`, `{`, `{"sensor_id": -1}`,
	} {
		f.Add([]byte(s))
	}
	e := ingesttest.New(f, ingesttest.Options{})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := ingest.DecodeJSON(b)
		if err == nil && !json.Valid(b) {
			t.Fatalf("invalid JSON accepted: %q", b)
		}
		var objs []map[string]json.RawMessage
		var obj map[string]json.RawMessage
		if json.Valid(b) && (json.Unmarshal(b, &objs) == nil && len(objs) > 0 && !slices.ContainsFunc(objs, func(m map[string]json.RawMessage) bool { return m == nil }) || json.Unmarshal(b, &obj) == nil && obj != nil) {
			var be *ingest.BatchError
			if errors.As(err, &be) && be.Items[0].Index == -1 && be.Items[0].Code == ingest.CodeMalformed {
				t.Fatalf("valid reading JSON refused as malformed: %q: %v", b, err)
			}
		}
		if err != nil {
			var be *ingest.BatchError
			if !errors.As(err, &be) || len(be.Items) == 0 {
				t.Fatalf("error %v is not a BatchError with items", err)
			}
			return
		}
		for _, r := range rs {
			if r.SensorID <= 0 || (r.HasTime && r.TimeNS < 0) {
				t.Fatalf("invalid reading decoded: %+v", r)
			}
		}
		recs, err := e.Service.Validate(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, rs)
		if err == nil && len(recs) != len(rs) {
			t.Fatalf("%d records for %d readings", len(recs), len(rs))
		}
		for _, r := range recs {
			if r.GetValue() == nil {
				t.Fatalf("record without value: %v", r)
			}
		}
	})
}
