package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/iotplatform/iotplatform/services/ingest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// BenchmarkIngestPayload_Batch1000 measures the shared ingest path (decode,
// validate, coerce, publish to the embedded bus) for a 1000-reading batch.
func BenchmarkIngestPayload_Batch1000(b *testing.B) {
	e := ingesttest.New(b, ingesttest.Options{})
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i := 0; i < 1000; i++ {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"sensor_id":%d,"timestamp":%d,"value":%d.5}`, ingesttest.SensorDouble, 1526717967000+int64(i), i)
	}
	buf.WriteByte(']')
	body := buf.Bytes()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Service.IngestPayload(context.Background(), ingesttest.DeviceA, ingest.ProtocolHTTP, ingest.FormatJSON, body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "readings/s")
}
