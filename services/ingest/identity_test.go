package ingest_test

import (
	"context"
	"strings"
	"testing"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/services/ingest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// ingestJSON ingests body for DeviceA and returns the records it published.
func ingestJSON(t *testing.T, e *ingesttest.Env, body string) []*busv1.Record {
	t.Helper()
	before := len(e.Sink.Records())
	if _, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(body)); err != nil {
		t.Fatalf("IngestPayload: %v", err)
	}
	return e.Sink.Records()[before:]
}

type identity struct{ sensor, ts, seq int64 }

func identities(recs []*busv1.Record) []identity {
	out := make([]identity, len(recs))
	for i, r := range recs {
		out[i] = identity{r.GetSensorId(), r.GetTimestampNs(), r.GetSeq()}
	}
	return out
}

func TestRecords_SameInstantReadingsGetDistinctIdentitiesAndReplaysTheSame(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	body := `[{"sensor_id":11,"timestamp":1526717967,"value":1},{"sensor_id":11,"timestamp":1526717967,"value":1},
	{"sensor_id":11,"timestamp":1526717967,"value":2},{"sensor_id":12,"timestamp":1526717967,"value":1}]`
	first := identities(ingestJSON(t, e, body))
	seen := map[identity]bool{}
	for i, id := range first {
		if seen[id] {
			t.Fatalf("reading %d shares its identity %+v with another reading of the batch", i, id)
		}
		seen[id] = true
	}
	if !(first[0].seq < first[1].seq && first[1].seq < first[2].seq) {
		t.Errorf("same-instant readings are not ordered as sent: %+v", first[:3])
	}
	replay := identities(ingestJSON(t, e, body))
	for i := range first {
		if first[i] != replay[i] {
			t.Errorf("replayed reading %d has identity %+v, first time %+v", i, replay[i], first[i])
		}
	}
	// The same instant with another value in a later batch is a new reading.
	other := identities(ingestJSON(t, e, `{"sensor_id":11,"timestamp":1526717967,"value":3}`))
	if seen[other[0]] {
		t.Errorf("a different value at a stored instant got an existing identity %+v", other[0])
	}
}

func TestRecords_UntimedReadingsGetDistinctIncreasingInstants(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	var last int64
	for range 50 {
		for _, r := range ingestJSON(t, e, `[{"sensor_id":11,"value":1},{"sensor_id":11,"value":1},{"sensor_id":11,"value":2}]`) {
			if r.GetTimestampNs() <= last {
				t.Fatalf("instant %d is not after %d", r.GetTimestampNs(), last)
			}
			last = r.GetTimestampNs()
		}
	}
}

func TestDecodeAny_TextThatIsNeitherIsRefusedWithBothErrors(t *testing.T) {
	for _, p := range []string{"hello", "temperature=21.5", "42", "\x0a garbage"} {
		_, err := ingest.DecodeAny([]byte(p))
		be, ok := err.(*ingest.BatchError)
		if !ok || be.Items[0].Code != ingest.CodeMalformed {
			t.Fatalf("%q: err %v, want a malformed batch", p, err)
		}
		for _, want := range []string{"not JSON or protobuf", "as JSON:", "as protobuf ReadingBatch:"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q: %v does not say %q", p, err, want)
			}
		}
	}
	if rs, err := ingest.DecodeAny([]byte(` [{"sensor_id":1,"value":2}]`)); err != nil || len(rs) != 1 {
		t.Errorf("JSON: %v %v", rs, err)
	}
}

func TestCoerce_NumbersInDecimalNotationOnly(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{`{"sensor_id":11,"value":"0x1p3"}`, false}, // hexadecimal float
		{`{"sensor_id":11,"value":"1_000"}`, false},
		{`{"sensor_id":11,"value":"inf"}`, false},
		{`{"sensor_id":12,"value":"0x10"}`, false}, // long sensor
		{`{"sensor_id":11,"value":"8"}`, true},
		{`{"sensor_id":11,"value":" -1.5e3 "}`, true},
		{`{"sensor_id":11,"value":".5"}`, true},
		{`{"sensor_id":11,"timestamp":"0x1p30","value":1}`, false},
		{`{"sensor_id":11,"timestamp":"1.5e9","value":1}`, true},
	} {
		_, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, ingest.FormatJSON, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
}
