package storeopensearch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// osReq sends a request to the test node and decodes the JSON answer into
// out (may be nil); it returns the status.
func osReq(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, testenv.OpenSearchURL(t)+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if strings.HasSuffix(strings.SplitN(path, "?", 2)[0], "_bulk") {
		req.Header.Set("Content-Type", "application/x-ndjson")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, res.StatusCode, raw)
		}
	}
	return res.StatusCode
}

// readingsIndices lists the deployment's readings indices.
func readingsIndices(t *testing.T, prefix string) []string {
	t.Helper()
	var res []struct {
		Index string `json:"index"`
	}
	osReq(t, http.MethodGet, "/_cat/indices/"+prefix+"-readings*?format=json&h=index", "", &res)
	var out []string
	for _, r := range res {
		out = append(out, r.Index)
	}
	slices.Sort(out)
	return out
}

func expireAll(t *testing.T, s *storeopensearch.Store, p store.RetentionPolicy) int {
	t.Helper()
	total := 0
	for i := 0; ; i++ {
		n, err := s.Expire(context.Background(), p, 1000)
		if err != nil {
			t.Fatalf("Expire: %v", err)
		}
		if n == 0 {
			return total
		}
		total += n
		if i > 50 {
			t.Fatal("Expire does not finish")
		}
	}
}

func listTimes(t *testing.T, s *storeopensearch.Store, sensor int64) []int64 {
	t.Helper()
	rs, _, err := s.List(context.Background(), store.ListQuery{SensorID: sensor, Limit: 1000})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	out := make([]int64, len(rs))
	for i, r := range rs {
		out[i] = r.TimeNS
	}
	return out
}

// searchTimes runs a match-all through the consumer search proxy.
func searchTimes(t *testing.T, s *storeopensearch.Store, sensor int64) []int64 {
	t.Helper()
	raw, status, err := s.Search(context.Background(), store.SensorRef{DeviceID: 1, SensorID: sensor}, []byte(`{"size":1000,"query":{"match_all":{}}}`))
	if err != nil || status != http.StatusOK {
		t.Fatalf("Search: %d %v %s", status, err, raw)
	}
	var res struct {
		Hits struct {
			Hits []struct {
				Source struct {
					TsNS int64 `json:"ts_ns"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		t.Fatal(err)
	}
	var out []int64
	for _, h := range res.Hits.Hits {
		out = append(out, h.Source.TsNS)
	}
	slices.Sort(out)
	return out
}

// TestDayIndices_RetentionDropsWholeDaysAndHidesExpiredReadings: shared
// mode writes one index per UTC day; retention drops a day whose every
// sensor is expired past its end, keeps a partly expired day (its expired
// readings invisible to List, Latest, Aggregate and the search proxy) and
// a day a sensor with a longer retention still needs.
func TestDayIndices_RetentionDropsWholeDaysAndHidesExpiredReadings(t *testing.T) {
	ctx := context.Background()
	s, prefix := openPrefixed(t, storeopensearch.ModeShared)
	day := func(t0 time.Time) string { return prefix + "-readings-" + t0.Format("20060102") }
	today := time.Now().UTC().Truncate(24 * time.Hour)
	dA := today.Add(-5 * 24 * time.Hour) // sensors 1 and 2 only: fully expired
	dC := today.Add(-4 * 24 * time.Hour) // sensor 3 keeps it (longer retention)
	dB := today.Add(-3 * 24 * time.Hour) // partly expired: the cut is at noon
	cut := dB.Add(12 * time.Hour).UnixNano()
	at := func(d time.Time, h time.Duration, i int) int64 {
		return d.Add(h).UnixNano() + int64(i)*int64(time.Second)
	}
	var rs []store.Reading
	add := func(sensor, ts int64, v float64) {
		rs = append(rs, store.Reading{DeviceID: 1, SensorID: sensor, TimeNS: ts, Value: store.Value{Kind: store.KindDouble, Double: v}})
	}
	var wantS1 []int64
	for i := range 5 {
		add(1, at(dA, time.Hour, i), 1)
		add(2, at(dA, 2*time.Hour, i), 2)
		add(1, at(dC, 2*time.Hour, i), 1)
		add(3, at(dC, time.Hour, i), 3)
		add(1, at(dB, time.Hour, i), 10)    // expired, hidden
		add(2, at(dB, 2*time.Hour, i), 20)  // expired, hidden: sensor 2 has nothing left
		add(1, at(dB, 20*time.Hour, i), 30) // kept
		wantS1 = append(wantS1, at(dB, 20*time.Hour, i))
	}
	recent := time.Now().Add(-time.Minute).UnixNano()
	add(1, recent, 40)
	wantS1 = append(wantS1, recent)
	if err := s.Write(ctx, rs); err != nil {
		t.Fatal(err)
	}
	// A replay lands on the same documents.
	if err := s.Write(ctx, rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	todayIdx := day(time.Unix(0, recent).UTC())
	want := []string{day(dA), day(dC), day(dB), todayIdx}
	slices.Sort(want)
	want = slices.Compact(want)
	if got := readingsIndices(t, prefix); !slices.Equal(got, want) {
		t.Fatalf("readings indices %v, want the day indices %v", got, want)
	}
	var cnt struct{ Count int }
	osReq(t, http.MethodGet, "/"+prefix+"-readings*/_count", "", &cnt)
	if cnt.Count != len(rs) {
		t.Fatalf("%d documents after a replay, want %d", cnt.Count, len(rs))
	}
	aggB := store.AggregateQuery{SensorID: 1, FromNS: dB.UnixNano(), ToNS: dB.Add(24 * time.Hour).UnixNano(), Interval: 24 * time.Hour}
	before, err := s.Aggregate(ctx, aggB)
	if err != nil || len(before) != 1 || before[0].Count != 10 {
		t.Fatalf("aggregate of the partly expired day before retention: %+v %v", before, err)
	}

	policy := store.RetentionPolicy{RawBefore: func(id int64) int64 {
		if id == 3 {
			return dC.Add(-24 * time.Hour).UnixNano() // longer retention: nothing of it expired
		}
		return cut
	}}
	if n := expireAll(t, s, policy); n != 25 { // sensor 1: 15, sensor 2: 10
		t.Fatalf("Expire expired %d readings, want 25", n)
	}
	want = slices.DeleteFunc(want, func(n string) bool { return n == day(dA) })
	if got := readingsIndices(t, prefix); !slices.Equal(got, want) {
		t.Fatalf("after retention: readings indices %v, want %v (the fully expired day dropped)", got, want)
	}
	if got := listTimes(t, s, 1); !slices.Equal(got, wantS1) {
		t.Errorf("List sensor 1 = %v, want only the unexpired %v", got, wantS1)
	}
	if got := listTimes(t, s, 2); len(got) != 0 {
		t.Errorf("List sensor 2 = %v, want nothing (all expired)", got)
	}
	if got := listTimes(t, s, 3); len(got) != 5 {
		t.Errorf("List sensor 3 = %v, want its 5 readings (longer retention)", got)
	}
	if got := searchTimes(t, s, 1); !slices.Equal(got, wantS1) {
		t.Errorf("search proxy sensor 1 = %v, want only the unexpired %v", got, wantS1)
	}
	if got := searchTimes(t, s, 2); len(got) != 0 {
		t.Errorf("search proxy sensor 2 = %v, want nothing", got)
	}
	latest, err := s.Latest(ctx, []int64{1, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, r := range latest {
		ids = append(ids, r.SensorID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []int64{1, 3}) {
		t.Errorf("Latest = %+v, want sensors 1 and 3 (sensor 2 has only expired readings)", latest)
	}
	// The hidden raw readings of the partly expired day are not counted
	// twice: the rollups answer before the horizon, the raw after it.
	after, err := s.Aggregate(ctx, aggB)
	if err != nil || len(after) != 1 || after[0].Count != 10 || after[0].Sum != before[0].Sum {
		t.Fatalf("aggregate of the partly expired day after retention: %+v %v, want %+v", after, err, before)
	}
	aggC := store.AggregateQuery{SensorID: 1, FromNS: dC.UnixNano(), ToNS: dC.Add(24 * time.Hour).UnixNano(), Interval: time.Hour}
	if got, err := s.Aggregate(ctx, aggC); err != nil || len(got) != 1 || got[0].Count != 5 {
		t.Fatalf("aggregate of sensor 1 on the kept day: %+v %v, want 5 readings from the rollups", got, err)
	}

	// Sensor 3's retention shortens: its day goes too.
	policy.RawBefore = func(int64) int64 { return cut }
	if n := expireAll(t, s, policy); n != 5 {
		t.Fatalf("Expire expired %d readings of sensor 3, want 5", n)
	}
	want = slices.DeleteFunc(want, func(n string) bool { return n == day(dC) })
	if got := readingsIndices(t, prefix); !slices.Equal(got, want) {
		t.Fatalf("after sensor 3 expired: readings indices %v, want %v", got, want)
	}
	if got := listTimes(t, s, 1); !slices.Equal(got, wantS1) {
		t.Errorf("List sensor 1 = %v, want %v", got, wantS1)
	}
}

// TestDayIndices_WriteBlockIsTransient: a write into a day index that
// retention has blocked (it is about to drop it) fails the call so the
// writer retries; nothing is dead-lettered.
func TestDayIndices_WriteBlockIsTransient(t *testing.T) {
	ctx := context.Background()
	s, prefix := openPrefixed(t, storeopensearch.ModeShared)
	ts := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	r := []store.Reading{{DeviceID: 1, SensorID: 7, TimeNS: ts, Value: store.Value{Kind: store.KindLong, Long: 1}}}
	if err := s.Write(ctx, r); err != nil {
		t.Fatal(err)
	}
	idx := prefix + "-readings-20240301"
	osReq(t, http.MethodPut, "/"+idx+"/_settings", `{"index.blocks.write":true}`, nil)
	r[0].TimeNS++
	if err := s.Write(ctx, r); err == nil {
		t.Fatal("Write into a write-blocked day index succeeded, want a transient error")
	}
	osReq(t, http.MethodPut, "/"+idx+"/_settings", `{"index.blocks.write":null}`, nil)
	if err := s.Write(ctx, r); err != nil {
		t.Fatalf("retry after the block: %v", err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listTimes(t, s, 7); len(got) != 2 {
		t.Fatalf("List = %v, want both readings", got)
	}
	if dls, _, err := s.ListDeadLetters(ctx, store.DeadLetterQuery{}); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters %+v %v, want none", dls, err)
	}
}

// TestDayIndices_LegacyIndexReadAndExpired: a deployment from before day
// indices has its readings in the single <prefix>-readings index; they
// stay readable next to the new day indices and retention still
// range-deletes the expired ones there.
func TestDayIndices_LegacyIndexReadAndExpired(t *testing.T) {
	ctx := context.Background()
	first, prefix := openPrefixed(t, storeopensearch.ModeShared)
	_ = first
	legacy := prefix + "-readings"
	if st := osReq(t, http.MethodPut, "/"+legacy, "", nil); st != http.StatusOK {
		t.Fatalf("create the legacy index: %d", st)
	}
	old := time.Now().Add(-72 * time.Hour).Truncate(time.Hour)
	recent := time.Now().Add(-time.Hour)
	var bulk bytes.Buffer
	var wantLeft []int64
	for i := range 10 {
		ts := old.Add(time.Duration(i) * time.Second).UnixNano()
		if i >= 6 {
			ts = recent.Add(time.Duration(i) * time.Second).UnixNano()
			wantLeft = append(wantLeft, ts)
		}
		fmt.Fprintf(&bulk, `{"index":{"_index":%q,"_id":"9_%d"}}`+"\n", legacy, ts)
		fmt.Fprintf(&bulk, `{"sensor_id":9,"device_id":1,"ts_ns":%d,"seq":0,"timestamp":%q,"kind":"double","value_double":%d,"value_num":%d}`+"\n",
			ts, time.Unix(0, ts).UTC().Format(time.RFC3339Nano), i, i)
	}
	var br struct{ Errors bool }
	osReq(t, http.MethodPost, "/_bulk?refresh=true", bulk.String(), &br)
	if br.Errors {
		t.Fatal("loading the legacy index failed")
	}
	s, err := storeopensearch.Open(ctx, slog.New(slog.DiscardHandler), storeopensearch.Config{URLs: []string{testenv.OpenSearchURL(t)}, Prefix: prefix, Settle: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixNano()
	if err := s.Write(ctx, []store.Reading{{DeviceID: 1, SensorID: 9, TimeNS: now, Value: store.Value{Kind: store.KindDouble, Double: 99}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	wantLeft = append(wantLeft, now)
	if got := listTimes(t, s, 9); len(got) != 11 {
		t.Fatalf("List before retention = %d readings, want the 10 legacy ones and the new one", len(got))
	}
	aggOld := store.AggregateQuery{SensorID: 9, FromNS: old.UnixNano(), ToNS: old.Add(time.Hour).UnixNano(), Interval: time.Hour}
	before, err := s.Aggregate(ctx, aggOld)
	if err != nil || len(before) != 1 || before[0].Count != 6 {
		t.Fatalf("aggregate before retention: %+v %v", before, err)
	}
	cut := time.Now().Add(-24 * time.Hour).UnixNano()
	if n := expireAll(t, s, store.RetentionPolicy{RawBefore: func(int64) int64 { return cut }}); n != 6 {
		t.Fatalf("Expire expired %d readings, want the 6 old legacy ones", n)
	}
	var cnt struct{ Count int }
	osReq(t, http.MethodGet, "/"+legacy+"/_count", "", &cnt)
	if cnt.Count != 4 {
		t.Fatalf("legacy index holds %d readings after retention, want the 4 recent ones (the expired range-deleted)", cnt.Count)
	}
	if got := listTimes(t, s, 9); !slices.Equal(got, wantLeft) {
		t.Fatalf("List after retention = %v, want %v", got, wantLeft)
	}
	if got, err := s.Aggregate(ctx, aggOld); err != nil || len(got) != 1 || got[0].Count != 6 || got[0].Sum != before[0].Sum {
		t.Fatalf("aggregate from the rollups: %+v %v, want %+v", got, err, before)
	}
}

// TestDayIndices_StaleWriteBlockIsLifted: a day index left write-blocked by
// a retention pass that died between blocking and dropping it is unblocked
// by the next pass when a sensor still keeps the day, so late readings for
// that day are not refused forever.
func TestDayIndices_StaleWriteBlockIsLifted(t *testing.T) {
	ctx := context.Background()
	s, prefix := openPrefixed(t, storeopensearch.ModeShared)
	ts := time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC).UnixNano()
	r := []store.Reading{{DeviceID: 1, SensorID: 7, TimeNS: ts, Value: store.Value{Kind: store.KindLong, Long: 1}}}
	if err := s.Write(ctx, r); err != nil {
		t.Fatal(err)
	}
	idx := prefix + "-readings-20240301"
	if st := osReq(t, http.MethodPut, "/"+idx+"/_settings", `{"index.blocks.write":true}`, nil); st != http.StatusOK { // the interrupted drop
		t.Fatalf("block %s: %d", idx, st)
	}
	r[0].TimeNS++
	if err := s.Write(ctx, r); err == nil {
		t.Fatal("Write into the blocked day succeeded before the retention pass")
	}
	if err := s.Refresh(ctx); err != nil { // the pass sees sensor 7 keeping the day at once
		t.Fatal(err)
	}
	keep := store.RetentionPolicy{RawBefore: func(int64) int64 { return 0 }} // sensor 7 keeps its readings
	if _, err := s.Expire(ctx, keep, 100); err != nil {
		t.Fatal(err)
	}
	r[0].TimeNS++
	if err := s.Write(ctx, r); err != nil {
		t.Fatalf("late reading for the kept day after the next retention pass: %v", err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listTimes(t, s, 7); len(got) != 2 {
		t.Fatalf("List = %v, want both readings", got)
	}
}
