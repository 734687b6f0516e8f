package storeembedded

import (
	"context"
	"log/slog"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

// TestExpire_DeletesOnlyExpiredReadingsAndAggregatesStillAnswer: old and
// new readings; retention deletes only the old raw readings, in small
// steps, and Aggregate over the old range answers the same from the
// per-minute, then per-hour aggregates.
func TestExpire_DeletesOnlyExpiredReadingsAndAggregatesStillAnswer(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, slog.New(slog.DiscardHandler), Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().Truncate(time.Hour)
	oldStart := now.Add(-48 * time.Hour)
	var rs []store.Reading
	for i := range 3000 { // 3000 readings every 3 s: 2.5 hours
		rs = append(rs, store.Reading{DeviceID: 1, SensorID: 7, TimeNS: oldStart.Add(time.Duration(i) * 3 * time.Second).UnixNano(), Value: store.Value{Kind: store.KindDouble, Double: float64(i % 97)}})
	}
	for i := range 50 {
		rs = append(rs, store.Reading{DeviceID: 1, SensorID: 7, TimeNS: now.Add(-time.Duration(i) * time.Second).UnixNano(), Value: store.Value{Kind: store.KindDouble, Double: 1000}})
		rs = append(rs, store.Reading{DeviceID: 1, SensorID: 8, TimeNS: oldStart.Add(time.Duration(i) * time.Second).UnixNano(), Value: store.Value{Kind: store.KindLong, Long: 5}})
	}
	if err := s.Write(ctx, rs); err != nil {
		t.Fatal(err)
	}
	q := store.AggregateQuery{SensorID: 7, FromNS: oldStart.UnixNano(), ToNS: oldStart.Add(3 * time.Hour).UnixNano(), Interval: time.Hour}
	want, err := s.Aggregate(ctx, q)
	if err != nil || len(want) != 3 {
		t.Fatalf("aggregate before: %v %v", want, err)
	}
	cut := now.Add(-24 * time.Hour).UnixNano()
	policy := store.RetentionPolicy{RawBefore: func(id int64) int64 {
		if id == 7 {
			return cut
		}
		return 0 // sensor 8 keeps everything (an override of "forever")
	}}
	deleted, steps := 0, 0
	for end := time.Now().Add(20 * time.Second); deleted < 3000 && time.Now().Before(end); {
		n, err := s.Expire(ctx, policy, 500)
		if err != nil {
			t.Fatal(err)
		}
		if n > 600 {
			t.Fatalf("one step deleted %d rows, want about 500 at most", n)
		}
		if n == 0 {
			time.Sleep(100 * time.Millisecond) // minutes not yet aggregated wait for the compactor
		}
		deleted += n
		steps++
	}
	if deleted != 3000 || steps < 6 {
		t.Fatalf("deleted %d in %d steps, want 3000 in >= 6", deleted, steps)
	}
	left, _, err := s.List(ctx, store.ListQuery{SensorID: 7, Limit: 10000})
	if err != nil || len(left) != 50 || left[0].Value.Double != 1000 {
		t.Fatalf("sensor 7 kept %d readings (%v), want the 50 new ones", len(left), err)
	}
	if other, _, _ := s.List(ctx, store.ListQuery{SensorID: 8, Limit: 10000}); len(other) != 50 {
		t.Fatalf("sensor 8 kept %d readings, want all 50", len(other))
	}
	got, err := s.Aggregate(ctx, q)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("aggregate from minute aggregates:\n got %+v\nwant %+v (%v)", got, want, err)
	}
	// Minute aggregates past their retention fold into hours: same answer.
	policy.MinuteBeforeNS = cut
	for range 100 {
		n, err := s.Expire(ctx, policy, 500)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
	}
	var mins int
	s.r.QueryRow("SELECT COUNT(*) FROM rollups WHERE sensor_id = 7 AND t < ?", cut).Scan(&mins)
	if mins != 0 {
		t.Fatalf("%d minute aggregates left before the cut", mins)
	}
	q8 := store.AggregateQuery{SensorID: 8, FromNS: oldStart.UnixNano(), ToNS: oldStart.Add(time.Hour).UnixNano(), Interval: time.Minute}
	if b, err := s.Aggregate(ctx, q8); err != nil || len(b) != 1 || b[0].Count != 50 {
		t.Fatalf("sensor 8 (raw kept) aggregates %+v %v", b, err)
	}
	got, err = s.Aggregate(ctx, q)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("aggregate from hour aggregates:\n got %+v\nwant %+v (%v)", got, want, err)
	}
}
