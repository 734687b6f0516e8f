package storeembedded

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

// TestAggregate_SameAnswerDirtyAndCompacted checks that summaries (clean
// minutes) and raw rows (dirty minutes) give identical buckets, including
// after an overwrite.
func TestAggregate_SameAnswerDirtyAndCompacted(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, slog.New(slog.DiscardHandler), Config{Path: filepath.Join(t.TempDir(), "r.db")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	m := int64(time.Minute)
	t0 := int64(1_700_000_040) * int64(time.Second) // a whole minute
	var rs []store.Reading
	for i := range 600 {
		rs = append(rs, store.Reading{SensorID: 1, DeviceID: 1, TimeNS: t0 + int64(i)*int64(time.Second)/3, Value: store.Value{Kind: store.KindLong, Long: int64(i % 17)}})
	}
	write := func(rs []store.Reading) {
		if err := s.Write(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	compactAll := func() {
		for {
			n, err := s.compact(7)
			if err != nil {
				t.Fatal(err)
			}
			if n == 0 {
				return
			}
		}
	}
	agg := func() []store.Bucket {
		bs, err := s.Aggregate(ctx, store.AggregateQuery{SensorID: 1, FromNS: t0, ToNS: t0 + 10*m + 5, Interval: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	same := func(a, b []store.Bucket) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i] != b[i] {
				return false
			}
		}
		return true
	}
	write(rs)
	dirty := agg()
	compactAll()
	clean := agg()
	if !same(dirty, clean) || len(clean) != 2 {
		t.Fatalf("dirty %+v\nclean %+v", dirty, clean)
	}
	write([]store.Reading{{SensorID: 1, DeviceID: 1, TimeNS: t0 + 5, Value: store.Value{Kind: store.KindLong, Long: 1000}}})
	write([]store.Reading{{SensorID: 1, DeviceID: 1, TimeNS: t0, Value: store.Value{Kind: store.KindLong, Long: 500}}})
	over := agg()
	compactAll()
	if again := agg(); !same(over, again) || over[0].Max != 1000 || over[0].First != 500 || over[0].Count != clean[0].Count+1 {
		t.Fatalf("after overwrite: dirty %+v\nclean %+v", over, again)
	}
}
