// Package storetest is the conformance suite every store backend passes:
// storetest.Run(t, newStore).
package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Refresher is implemented by backends whose writes become searchable
// asynchronously (OpenSearch); the suite calls it before reading.
type Refresher interface {
	Refresh(ctx context.Context) error
}

// Provisioner is implemented by backends that create per-sensor resources.
type Provisioner interface {
	CreateSensorIndex(ctx context.Context, s store.SensorRef) error
}

// NewStore returns a fresh, empty store for one test; cleanup is the
// caller's (t.Cleanup).
type NewStore func(t *testing.T) store.Store

// Run runs the conformance suite.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(*testing.T, *env)
	}{
		{"TypedValuesRoundTrip", testTypedValues},
		{"ReplayOverwritesNeverDuplicates", testReplay},
		{"SameInstantReadingsAllKeptInSeqOrder", testSameInstant},
		{"ListPaginatesStablyBothOrders", testListPagination},
		{"ListRespectsRange", testListRange},
		{"AggregateBuckets", testAggregate},
		{"AggregateRejectsTooManyBuckets", testAggregateInvalid},
		{"LatestPerSensor", testLatest},
		{"DeleteSensorRemovesOnlyItsReadings", testDeleteSensor},
		{"DeadLettersFilterAndPaginate", testDeadLetters},
		{"ConcurrentWritesAllStored", testConcurrentWrites},
		{"FeedDeliversWrittenReadings", testFeed},
		{"RetentionDeletesOnlyExpiredAggregatesStillAnswer", testRetention},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			e := &env{t: t, s: s, ctx: context.Background(), base: rand.Int64N(1<<40) * 1000}
			tc.fn(t, e)
		})
	}
}

type env struct {
	t    *testing.T
	s    store.Store
	ctx  context.Context
	base int64
}

// sensor returns a test-unique sensor reference, provisioned if needed.
func (e *env) sensor(n int64) store.SensorRef {
	ref := store.SensorRef{DeviceID: e.base + 500 + n%2, SensorID: e.base + n}
	if p, ok := e.s.(Provisioner); ok {
		if err := p.CreateSensorIndex(e.ctx, ref); err != nil {
			e.t.Fatalf("create sensor: %v", err)
		}
	}
	return ref
}

func (e *env) write(rs ...store.Reading) {
	e.t.Helper()
	if err := e.s.Write(e.ctx, rs); err != nil {
		e.t.Fatalf("Write: %v", err)
	}
	e.refresh()
}

func (e *env) refresh() {
	e.t.Helper()
	if r, ok := e.s.(Refresher); ok {
		if err := r.Refresh(e.ctx); err != nil {
			e.t.Fatalf("Refresh: %v", err)
		}
	}
}

func dbl(ref store.SensorRef, ts int64, v float64) store.Reading {
	return store.Reading{DeviceID: ref.DeviceID, SensorID: ref.SensorID, TimeNS: ts, Value: store.Value{Kind: store.KindDouble, Double: v}, Protocol: "http", ReceiveTimeNS: ts + 1}
}

func (e *env) listAll(q store.ListQuery) []store.Reading {
	e.t.Helper()
	var out []store.Reading
	for i := 0; i < 1000; i++ {
		page, more, err := e.s.List(e.ctx, q)
		if err != nil {
			e.t.Fatalf("List: %v", err)
		}
		out = append(out, page...)
		if !more {
			return out
		}
		if len(page) == 0 {
			e.t.Fatal("List said more but returned an empty page")
		}
		last := page[len(page)-1]
		q.AfterNS, q.AfterSeq, q.HasAfter = last.TimeNS, last.Seq, true
	}
	e.t.Fatal("List did not terminate")
	return nil
}

const t0 = int64(1_700_000_000_000_000_000)

func testTypedValues(t *testing.T, e *env) {
	ref := e.sensor(1)
	obj := []byte(`{"a":1,"b":"x","c":{"d":true}}`)
	cases := []store.Value{
		{Kind: store.KindDouble, Double: 21.5},
		{Kind: store.KindLong, Long: 91827364},
		{Kind: store.KindBool, Bool: true},
		{Kind: store.KindString, Str: "123"},
		{Kind: store.KindObject, Object: obj},
		{Kind: store.KindLong, Long: -1 << 60},
	}
	var rs []store.Reading
	for i, v := range cases {
		rs = append(rs, store.Reading{DeviceID: ref.DeviceID, SensorID: ref.SensorID, TimeNS: t0 + int64(i)*1001, Value: v, Protocol: "mqtt", ReceiveTimeNS: 7})
	}
	e.write(rs...)
	got := e.listAll(store.ListQuery{SensorID: ref.SensorID, Limit: 100})
	if len(got) != len(cases) {
		t.Fatalf("got %d readings, want %d", len(got), len(cases))
	}
	for i, r := range got {
		want := rs[i]
		if r.TimeNS != want.TimeNS || r.SensorID != want.SensorID || r.DeviceID != want.DeviceID {
			t.Errorf("reading %d identity = %d/%d/%d, want %d/%d/%d", i, r.SensorID, r.DeviceID, r.TimeNS, want.SensorID, want.DeviceID, want.TimeNS)
		}
		if !sameValue(r.Value, want.Value) {
			t.Errorf("reading %d value = %+v, want %+v", i, r.Value, want.Value)
		}
	}
}

func sameValue(a, b store.Value) bool {
	if a.Kind != b.Kind {
		return false
	}
	switch a.Kind {
	case store.KindDouble:
		return a.Double == b.Double
	case store.KindLong:
		return a.Long == b.Long
	case store.KindBool:
		return a.Bool == b.Bool
	case store.KindString:
		return a.Str == b.Str
	case store.KindObject:
		var x, y any
		return json.Unmarshal(a.Object, &x) == nil && json.Unmarshal(b.Object, &y) == nil && fmt.Sprint(x) == fmt.Sprint(y)
	}
	return false
}

func testReplay(t *testing.T, e *env) {
	ref := e.sensor(1)
	e.write(dbl(ref, t0, 1), dbl(ref, t0+1, 2))
	e.write(dbl(ref, t0, 1), dbl(ref, t0+1, 3), dbl(ref, t0+1, 4))
	got := e.listAll(store.ListQuery{SensorID: ref.SensorID})
	if len(got) != 2 {
		t.Fatalf("after replay got %d readings, want 2", len(got))
	}
	if got[1].Value.Double != 4 {
		t.Errorf("replayed value = %v, want the last write 4", got[1].Value.Double)
	}
	// Aggregates see the overwrite too, at minute-, second- and
	// unaligned boundaries.
	minute := int64(time.Minute)
	m0 := (t0/minute + 1) * minute
	e.write(dbl(ref, m0, 10), dbl(ref, m0+1, 20))
	e.write(dbl(ref, m0+1, 30), dbl(ref, m0, 10))
	for _, from := range []int64{m0, m0 - int64(time.Second), m0 - 7} {
		bs, err := e.s.Aggregate(e.ctx, store.AggregateQuery{SensorID: ref.SensorID, FromNS: from, ToNS: m0 + 2*minute, Interval: time.Hour})
		if err != nil {
			t.Fatalf("Aggregate: %v", err)
		}
		if len(bs) != 1 || bs[0].Count != 2 || bs[0].Sum != 40 || bs[0].Max != 30 || bs[0].First != 10 || bs[0].Last != 30 {
			t.Errorf("from %d: after overwrite buckets = %+v, want count 2 sum 40 max 30 first 10 last 30", from-m0, bs)
		}
	}
}

func testListPagination(t *testing.T, e *env) {
	ref := e.sensor(1)
	var rs []store.Reading
	for i := range 25 {
		rs = append(rs, dbl(ref, t0+int64(i)*int64(time.Millisecond), float64(i)))
	}
	e.write(rs...)
	for _, order := range []store.Order{store.Ascending, store.Descending} {
		got := e.listAll(store.ListQuery{SensorID: ref.SensorID, Limit: 7, Order: order})
		if len(got) != 25 {
			t.Fatalf("order %d: got %d readings over pages, want 25", order, len(got))
		}
		for i, r := range got {
			want := i
			if order == store.Descending {
				want = 24 - i
			}
			if r.Value.Double != float64(want) {
				t.Fatalf("order %d: reading %d = %v, want %d", order, i, r.Value.Double, want)
			}
		}
	}
	page, more, err := e.s.List(e.ctx, store.ListQuery{SensorID: ref.SensorID, Limit: 25})
	if err != nil || more || len(page) != 25 {
		t.Errorf("exact page: len %d more %v err %v, want 25 false nil", len(page), more, err)
	}
}

func testListRange(t *testing.T, e *env) {
	ref := e.sensor(1)
	other := e.sensor(2)
	e.write(dbl(ref, t0, 0), dbl(ref, t0+10, 1), dbl(ref, t0+20, 2), dbl(ref, t0+30, 3), dbl(other, t0+10, 9))
	tests := []struct {
		name     string
		from, to int64
		want     []float64
	}{
		{"from inclusive to exclusive", t0 + 10, t0 + 30, []float64{1, 2}},
		{"open end", t0 + 20, 0, []float64{2, 3}},
		{"empty", t0 + 31, t0 + 40, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := e.listAll(store.ListQuery{SensorID: ref.SensorID, FromNS: tc.from, ToNS: tc.to})
			var vs []float64
			for _, r := range got {
				vs = append(vs, r.Value.Double)
			}
			if fmt.Sprint(vs) != fmt.Sprint(tc.want) {
				t.Errorf("values = %v, want %v", vs, tc.want)
			}
		})
	}
}

func testAggregate(t *testing.T, e *env) {
	ref := e.sensor(1)
	min := int64(time.Minute)
	// bucket 0: 1,2,3; bucket 1: empty; bucket 2: 10; bucket 3: 5,7; outside: 100
	e.write(dbl(ref, t0, 1), dbl(ref, t0+1000, 3), dbl(ref, t0+500, 2), dbl(ref, t0+2*min+5, 10),
		store.Reading{DeviceID: ref.DeviceID, SensorID: ref.SensorID, TimeNS: t0 + 3*min, Value: store.Value{Kind: store.KindDouble, Double: 5}},
		dbl(ref, t0+4*min-1, 7), dbl(ref, t0+4*min, 100), dbl(ref, t0-1, 100))
	got, err := e.s.Aggregate(e.ctx, store.AggregateQuery{SensorID: ref.SensorID, FromNS: t0, ToNS: t0 + 4*min, Interval: time.Minute})
	if err != nil {
		t.Fatalf("Aggregate: %v", err)
	}
	want := []store.Bucket{
		{StartNS: t0, Count: 3, Avg: 2, Min: 1, Max: 3, Sum: 6, First: 1, Last: 3},
		{StartNS: t0 + 2*min, Count: 1, Avg: 10, Min: 10, Max: 10, Sum: 10, First: 10, Last: 10},
		{StartNS: t0 + 3*min, Count: 2, Avg: 6, Min: 5, Max: 7, Sum: 12, First: 5, Last: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d buckets %+v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func testAggregateInvalid(t *testing.T, e *env) {
	ref := e.sensor(1)
	tests := []store.AggregateQuery{
		{SensorID: ref.SensorID, FromNS: t0, ToNS: t0 + int64(10001*time.Second), Interval: time.Second},
		{SensorID: ref.SensorID, FromNS: t0, ToNS: t0 + int64(time.Hour), Interval: time.Millisecond},
		{SensorID: ref.SensorID, FromNS: t0, ToNS: t0, Interval: time.Second},
	}
	for _, q := range tests {
		if _, err := e.s.Aggregate(e.ctx, q); err == nil || !isInvalid(err) {
			t.Errorf("Aggregate(%+v) err = %v, want ErrInvalid", q, err)
		}
	}
}

func isInvalid(err error) bool {
	for ; err != nil; err = unwrap(err) {
		if err == store.ErrInvalid {
			return true
		}
	}
	return false
}

func unwrap(err error) error {
	u, ok := err.(interface{ Unwrap() error })
	if !ok {
		return nil
	}
	return u.Unwrap()
}

// testSameInstant: readings of one sensor that share an instant but differ
// in Seq are distinct readings, listed (and paginated, in both orders) by
// (TimeNS, Seq); rewriting one with the same (TimeNS, Seq) replaces only it.
func testSameInstant(t *testing.T, e *env) {
	ref := e.sensor(1)
	seqd := func(ts, seq int64, v float64) store.Reading {
		r := dbl(ref, ts, v)
		r.Seq = seq
		return r
	}
	e.write(seqd(t0, 2<<40|7, 3), seqd(t0, 0, 1), seqd(t0, 1<<40|9, 2), seqd(t0+1, 0, 4), seqd(t0+1, 5, 5))
	e.write(seqd(t0, 1<<40|9, 2)) // a replay of one of them
	for _, order := range []store.Order{store.Ascending, store.Descending} {
		got := e.listAll(store.ListQuery{SensorID: ref.SensorID, Limit: 2, Order: order})
		var vals []float64
		for _, r := range got {
			vals = append(vals, r.Value.Double)
		}
		want := []float64{1, 2, 3, 4, 5}
		if order == store.Descending {
			want = []float64{5, 4, 3, 2, 1}
		}
		if fmt.Sprint(vals) != fmt.Sprint(want) {
			t.Errorf("order %d: values %v, want %v", order, vals, want)
		}
		if len(got) == 5 && (got[0].Seq != map[store.Order]int64{store.Ascending: 0, store.Descending: 5}[order]) {
			t.Errorf("order %d: first seq %d", order, got[0].Seq)
		}
	}
	got, err := e.s.Latest(e.ctx, []int64{ref.SensorID})
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	if len(got) != 1 || got[0].Value.Double != 5 || got[0].Seq != 5 {
		t.Errorf("Latest = %+v, want the reading with the highest seq at the newest instant (5)", got)
	}
	bs, err := e.s.Aggregate(e.ctx, store.AggregateQuery{SensorID: ref.SensorID, FromNS: t0 - int64(time.Second), ToNS: t0 + int64(time.Second), Interval: time.Hour})
	if err != nil {
		t.Fatalf("Aggregate: %v", err)
	}
	if len(bs) != 1 || bs[0].Count != 5 || bs[0].Sum != 15 || bs[0].First != 1 || bs[0].Last != 5 {
		t.Errorf("Aggregate = %+v, want count 5 sum 15 first 1 last 5", bs)
	}
}

func testLatest(t *testing.T, e *env) {
	a, b, c := e.sensor(1), e.sensor(2), e.sensor(3)
	e.write(dbl(a, t0+5, 5), dbl(a, t0+9, 9), dbl(a, t0+1, 1), dbl(b, t0, 42))
	got, err := e.s.Latest(e.ctx, []int64{a.SensorID, b.SensorID, c.SensorID})
	if err != nil {
		t.Fatalf("Latest: %v", err)
	}
	vals := map[int64]float64{}
	for _, r := range got {
		vals[r.SensorID] = r.Value.Double
	}
	if len(got) != 2 || vals[a.SensorID] != 9 || vals[b.SensorID] != 42 {
		t.Errorf("Latest = %+v, want a=9 b=42 and nothing for c", got)
	}
}

func testDeleteSensor(t *testing.T, e *env) {
	a, b := e.sensor(1), e.sensor(2)
	e.write(dbl(a, t0, 1), dbl(a, t0+1, 2), dbl(b, t0, 3))
	if err := e.s.DeleteSensor(e.ctx, a.SensorID); err != nil {
		t.Fatalf("DeleteSensor: %v", err)
	}
	e.refresh()
	if got := e.listAll(store.ListQuery{SensorID: a.SensorID}); len(got) != 0 {
		t.Errorf("deleted sensor still has %d readings", len(got))
	}
	if got := e.listAll(store.ListQuery{SensorID: b.SensorID}); len(got) != 1 {
		t.Errorf("other sensor has %d readings, want 1", len(got))
	}
}

func testDeadLetters(t *testing.T, e *env) {
	d1, d2 := e.base+1, e.base+2
	var dls []deadletter.Letter
	for i := range 5 {
		dls = append(dls, deadletter.Letter{DeviceID: d1, SensorID: e.base + 10, Protocol: "mqtt", Reason: fmt.Sprintf("reason %d", i), Payload: []byte(`{"v":"x"}`), TimeNS: t0 + int64(i)})
	}
	dls = append(dls, deadletter.Letter{DeviceID: d2, SensorID: e.base + 20, Protocol: "http", Reason: "other", TimeNS: t0 + 100})
	if err := e.s.WriteDeadLetters(e.ctx, dls); err != nil {
		t.Fatalf("WriteDeadLetters: %v", err)
	}
	e.refresh()
	var got []store.DeadLetter
	tok := ""
	for i := 0; i < 10; i++ {
		page, next, err := e.s.ListDeadLetters(e.ctx, store.DeadLetterQuery{DeviceIDs: []int64{d1}, Limit: 2, PageToken: tok})
		if err != nil {
			t.Fatalf("ListDeadLetters: %v", err)
		}
		got = append(got, page...)
		if tok = next; tok == "" {
			break
		}
	}
	if len(got) != 5 {
		t.Fatalf("got %d dead letters of device 1, want 5", len(got))
	}
	for i, d := range got {
		if want := fmt.Sprintf("reason %d", 4-i); d.Reason != want || d.DeviceID != d1 || d.Protocol != "mqtt" || string(d.Payload) != `{"v":"x"}` {
			t.Errorf("dead letter %d = %+v, want reason %q newest first", i, d, want)
		}
	}
	page, _, err := e.s.ListDeadLetters(e.ctx, store.DeadLetterQuery{SensorID: e.base + 20, DeviceIDs: []int64{d1, d2}})
	if err != nil || len(page) != 1 || page[0].Reason != "other" {
		t.Errorf("by sensor = %+v, %v; want the one of sensor 20", page, err)
	}
	// A keyed letter written again (in the same call or another) is kept
	// once; another key, or none, is another letter.
	d3 := e.base + 3
	keyed := deadletter.Letter{DeviceID: d3, SensorID: e.base + 30, Protocol: "mqtt", Reason: "unknown sensor", TimeNS: t0 + 200, Key: fmt.Sprintf("k-%d", d3)}
	other := keyed
	other.Key += "-2"
	unkeyed := keyed
	unkeyed.Key = ""
	for _, batch := range [][]deadletter.Letter{{keyed, keyed}, {keyed, other, unkeyed}, {unkeyed}} {
		if err := e.s.WriteDeadLetters(e.ctx, batch); err != nil {
			t.Fatalf("WriteDeadLetters: %v", err)
		}
	}
	e.refresh()
	if page, _, err := e.s.ListDeadLetters(e.ctx, store.DeadLetterQuery{DeviceIDs: []int64{d3}}); err != nil || len(page) != 4 {
		t.Errorf("keyed letters written again: %d listed (%v), want 4 (key k once, key k-2, two without a key)", len(page), err)
	}
}

func testConcurrentWrites(t *testing.T, e *env) {
	ref := e.sensor(1)
	const writers, per = 16, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rs []store.Reading
			for i := range per {
				rs = append(rs, dbl(ref, t0+int64(w*per+i), float64(i)))
			}
			errs <- e.s.Write(e.ctx, rs)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent Write: %v", err)
		}
	}
	e.refresh()
	if got := e.listAll(store.ListQuery{SensorID: ref.SensorID, Limit: 1000}); len(got) != writers*per {
		t.Errorf("got %d readings, want %d", len(got), writers*per)
	}
}

func testFeed(t *testing.T, e *env) {
	ref, other := e.sensor(1), e.sensor(2)
	sub := e.s.Feed().Subscribe([]int64{ref.SensorID}, 16)
	defer sub.Close()
	e.write(dbl(other, t0, 1), dbl(ref, t0, 2), dbl(ref, t0+1, 3))
	for _, want := range []float64{2, 3} {
		select {
		case r := <-sub.C:
			if r.SensorID != ref.SensorID || r.Value.Double != want {
				t.Errorf("feed got %+v, want value %v of the subscribed sensor", r, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("feed delivered nothing")
		}
	}
}
