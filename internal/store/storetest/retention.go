package storetest

import (
	"math"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

// testRetention: old and new readings of a sensor whose raw readings
// expire, and old readings of a sensor that keeps them; retention deletes
// only the expired ones, in bounded steps, and Aggregate over the expired
// range still answers the same from the per-minute aggregates.
func testRetention(t *testing.T, e *env) {
	ex, ok := e.s.(store.Expirer)
	if !ok {
		t.Fatalf("%T does not implement store.Expirer (retention)", e.s)
	}
	a, b := e.sensor(1), e.sensor(2)
	now := time.Now().Truncate(time.Hour)
	oldStart := now.Add(-48 * time.Hour).UnixNano()
	var rs []store.Reading
	for i := range 600 { // every 3 s: 30 minutes
		rs = append(rs, dbl(a, oldStart+int64(i)*int64(3*time.Second), float64(i%97)))
	}
	// A non-numeric reading only counts.
	rs = append(rs, store.Reading{DeviceID: a.DeviceID, SensorID: a.SensorID, TimeNS: oldStart + int64(40*time.Minute), Value: store.Value{Kind: store.KindString, Str: "x"}})
	for i := range 20 {
		rs = append(rs, dbl(a, now.Add(-time.Duration(i+1)*time.Second).UnixNano(), 1000))
	}
	for i := range 40 {
		rs = append(rs, store.Reading{DeviceID: b.DeviceID, SensorID: b.SensorID, TimeNS: oldStart + int64(i)*int64(time.Second), Value: store.Value{Kind: store.KindLong, Long: 5}})
	}
	e.write(rs...)
	q := store.AggregateQuery{SensorID: a.SensorID, FromNS: oldStart, ToNS: oldStart + int64(time.Hour), Interval: 10 * time.Minute}
	want, err := e.s.Aggregate(e.ctx, q)
	if err != nil || len(want) != 4 {
		t.Fatalf("aggregate before retention: %+v %v", want, err)
	}
	qh := q
	qh.Interval = time.Hour // per-hour aggregates are exact for whole hours
	wantH, err := e.s.Aggregate(e.ctx, qh)
	if err != nil || len(wantH) != 1 {
		t.Fatalf("aggregate before retention: %+v %v", wantH, err)
	}
	cut := now.Add(-24 * time.Hour).UnixNano()
	policy := store.RetentionPolicy{RawBefore: func(id int64) int64 {
		if id == a.SensorID {
			return cut
		}
		return 0 // b keeps everything
	}}
	const limit = 150
	deleted, steps := 0, 0
	for end := time.Now().Add(20 * time.Second); deleted < 601 && time.Now().Before(end); {
		n, err := ex.Expire(e.ctx, policy, limit)
		if err != nil {
			t.Fatalf("Expire: %v", err)
		}
		if n > limit+20 { // a minute (20 readings) is taken whole
			t.Fatalf("one step deleted %d readings, want about %d at most", n, limit)
		}
		if n == 0 {
			time.Sleep(100 * time.Millisecond) // the embedded store summarises minutes in the background
		}
		deleted += n
		steps++
	}
	if deleted != 601 || steps < 4 {
		t.Fatalf("deleted %d readings in %d steps, want 601 in >= 4", deleted, steps)
	}
	e.refresh()
	if left := e.listAll(store.ListQuery{SensorID: a.SensorID, Limit: 1000}); len(left) != 20 || left[0].Value.Double != 1000 {
		t.Fatalf("sensor a kept %d readings, want the 20 new ones", len(left))
	}
	if other := e.listAll(store.ListQuery{SensorID: b.SensorID, Limit: 1000}); len(other) != 40 {
		t.Fatalf("sensor b kept %d readings, want all 40", len(other))
	}
	if n, err := ex.Expire(e.ctx, policy, limit); err != nil || n != 0 {
		t.Fatalf("Expire after everything expired deleted %d (%v), want 0", n, err)
	}
	got, err := e.s.Aggregate(e.ctx, q)
	if err != nil || !bucketsNear(got, want) {
		t.Fatalf("aggregate from the per-minute aggregates:\n got %+v\nwant %+v (%v)", got, want, err)
	}
	// Minute aggregates past their retention fold into hours: same answer.
	policy.MinuteBeforeNS = cut
	folded := 0
	for i := 0; ; i++ {
		n, err := ex.Expire(e.ctx, policy, 20)
		if err != nil {
			t.Fatalf("Expire (fold minutes): %v", err)
		}
		if n == 0 {
			break
		}
		folded += n
		if i > 50 {
			t.Fatal("folding minute aggregates does not finish")
		}
	}
	if folded != 31 { // 30 minutes of doubles and the minute of the string
		t.Fatalf("folded %d minute aggregates into hours, want 31", folded)
	}
	got, err = e.s.Aggregate(e.ctx, qh)
	if err != nil || !bucketsNear(got, wantH) {
		t.Fatalf("aggregate from the per-hour aggregates:\n got %+v\nwant %+v (%v)", got, wantH, err)
	}
	// A range spanning the raw horizon and the new readings.
	span := store.AggregateQuery{SensorID: a.SensorID, FromNS: oldStart, ToNS: now.Add(time.Hour).UnixNano(), Interval: 12 * time.Hour}
	if got, err := e.s.Aggregate(e.ctx, span); err != nil || len(got) != 2 || got[0].Count != 601 || got[1].Count != 20 || got[1].Avg != 1000 {
		t.Fatalf("aggregate across the horizon: %+v %v", got, err)
	}
	qb := store.AggregateQuery{SensorID: b.SensorID, FromNS: oldStart, ToNS: oldStart + int64(time.Hour), Interval: time.Minute}
	if got, err := e.s.Aggregate(e.ctx, qb); err != nil || len(got) != 1 || got[0].Count != 40 || got[0].Sum != 200 {
		t.Fatalf("sensor b (raw kept) aggregates %+v %v", got, err)
	}
}

func bucketsNear(got, want []store.Bucket) bool {
	if len(got) != len(want) {
		return false
	}
	near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-9*math.Max(1, math.Abs(y)) }
	for i := range want {
		g, w := got[i], want[i]
		if g.StartNS != w.StartNS || g.Count != w.Count || !near(g.Avg, w.Avg) || !near(g.Sum, w.Sum) || g.Min != w.Min || g.Max != w.Max || g.First != w.First || g.Last != w.Last {
			return false
		}
	}
	return true
}
