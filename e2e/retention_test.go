package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestRetention_OnlyExpiredReadingsGoAndOldAggregatesStillAnswer: with a
// 24 h default raw retention, readings from two days ago are deleted in the
// background and new ones stay; a sensor whose retention is overridden to
// 72 h keeps its old readings; Aggregate over the old range answers the
// same as before, from the per-minute aggregates.
func TestRetention_OnlyExpiredReadingsGoAndOldAggregatesStillAnswer(t *testing.T) {
	testRetention(t, nil)
}

// TestRetention_OpenSearch: the same on the OpenSearch store (per-sensor
// indices): a bounded range delete per sensor, minute rollups answer.
func TestRetention_OpenSearch(t *testing.T) {
	testRetention(t, []string{"--opensearch-url", testenv.OpenSearchURL(t), "--opensearch-index-mode", "per-sensor", "--opensearch-prefix", osPrefix(t, "e2e-ret-"+randHex(4))})
}

// TestRetention_OpenSearchSharedDayIndices: the same on the shared-index
// mode's day indices: the expired readings are hidden at once (their day
// index is kept by sensor b's longer retention) and the rollups answer.
func TestRetention_OpenSearchSharedDayIndices(t *testing.T) {
	testRetention(t, []string{"--opensearch-url", testenv.OpenSearchURL(t), "--opensearch-index-mode", "shared", "--opensearch-prefix", osPrefix(t, "e2e-retd-"+randHex(4))})
}

func testRetention(t *testing.T, args []string) {
	p := Start(t, Options{Args: append([]string{"--retention-raw", "24h", "--retention-interval", "500ms"}, args...)})
	admin := p.AdminToken()
	a := p.NewDevice(admin, "ret-a", "double")
	b := p.NewDevice(admin, "ret-b", "double")
	if r := p.Do("PUT", "/api/sensors/"+b.SensorID+"/retention", admin, map[string]any{"raw": "259200s"}); r.Status != 200 || r.Str("overridden") != "true" {
		t.Fatalf("set retention: %d %s", r.Status, r.Body)
	}
	if r := p.Do("GET", "/api/sensors/"+a.SensorID+"/retention", admin, nil); r.Status != 200 || r.Str("raw") != "86400s" || r.Str("overridden") != "false" {
		t.Fatalf("get retention: %d %s", r.Status, r.Body)
	}
	old := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
	for _, d := range []Device{a, b} {
		var items []string
		for i := range 600 { // every 6 s for an hour
			items = append(items, fmt.Sprintf(`{"sensor_id":%s,"timestamp":%d,"value":%d}`, d.SensorID, old.Add(time.Duration(i)*6*time.Second).UnixMilli(), i%50))
		}
		for i := range 5 {
			items = append(items, fmt.Sprintf(`{"sensor_id":%s,"timestamp":%d,"value":1000}`, d.SensorID, time.Now().Add(-time.Duration(i)*time.Minute).UnixMilli()))
		}
		if s, body := postJSON(t, p, d.Token, "["+strings.Join(items, ",")+"]"); s != 200 {
			t.Fatalf("ingest: %d %s", s, body)
		}
	}
	aggPath := func(d Device) string {
		return fmt.Sprintf("/api/sensors/%s/aggregate?from=%d&to=%d&interval=1h&fn=avg&fn=count&fn=max", d.SensorID, old.UnixMilli(), old.Add(time.Hour).UnixMilli())
	}
	before := p.Do("GET", aggPath(a), admin, nil)
	for end := time.Now().Add(10 * time.Second); before.Status == 200 && string(before.Body) == `{"buckets":[]}` && time.Now().Before(end); {
		time.Sleep(200 * time.Millisecond) // OpenSearch: searchable after its refresh interval
		before = p.Do("GET", aggPath(a), admin, nil)
	}
	if before.Status != 200 || !strings.Contains(string(before.Body), `"count":"600"`) {
		t.Fatalf("aggregate before: %d %s", before.Status, before.Body)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if rs := readingsREST(t, p, admin, a.SensorID, "from=0"); len(rs) == 5 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("sensor a still has %d readings 30 s later, want the 5 new ones\n%s", len(rs), tail(p.Logs(), 10))
		}
		time.Sleep(300 * time.Millisecond)
	}
	if rs := readingsREST(t, p, admin, b.SensorID, "from=0"); len(rs) != 605 {
		t.Fatalf("sensor b (72 h override) has %d readings, want 605", len(rs))
	}
	after := p.Do("GET", aggPath(a), admin, nil)
	if after.Status != 200 || string(after.Body) != string(before.Body) {
		t.Fatalf("aggregate of the expired range changed:\nbefore %s\nafter  %s", before.Body, after.Body)
	}
}
