package ingest_test

import (
	"context"
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
