package storeembedded

import (
	"context"
	"log/slog"
	"math"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/sqliteraw"
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

// TestCompactBefore_LeavesOpenMinutesDirty: a pass bounded by `before`
// folds the dirty minutes that start before it and leaves later ones dirty
// (Aggregate reads their raw rows), and a pass over all folds them too.
func TestCompactBefore_LeavesOpenMinutesDirty(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.db")
	w := openTestWriter(t, path)
	s := &Store{raw: w} // no committer: nothing compacts behind the test
	m := int64(time.Minute)
	t0 := int64(1_700_000_040) * int64(time.Second) // a whole minute
	var rs []store.Reading
	for i := range 30 {
		rs = append(rs, store.Reading{SensorID: 1, DeviceID: 1, TimeNS: t0 + int64(i)*4*int64(time.Second), Value: store.Value{Kind: store.KindDouble, Double: float64(i)}, Protocol: "http"})
	}
	if err := s.commit([]*writeReq{{rs: rs}}); err != nil { // minutes t0 and t0+m
		t.Fatal(err)
	}
	dirty := func() []slot {
		var d []slot
		if err := w.tx(func() (err error) { d, err = w.dirtyMinutes(10, math.MaxInt64); return err }); err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := dirty(); len(d) != 2 {
		t.Fatalf("dirty minutes %v, want 2", d)
	}
	n, err := s.compactBefore(64, t0+m)
	if err != nil || n != 1 {
		t.Fatalf("compactBefore = %d, %v; want 1 minute", n, err)
	}
	if d := dirty(); len(d) != 1 || d[0] != (slot{1, t0 + m}) {
		t.Fatalf("dirty after a bounded pass %v, want only the later minute", d)
	}
	var c int64
	if err := w.tx(func() error {
		st, err := w.c.Prepare("SELECT c FROM rollups WHERE sensor_id = 1 AND t = " + strconv.FormatInt(t0, 10))
		if err != nil {
			return err
		}
		defer st.Close()
		if _, err := st.Step(); err != nil {
			return err
		}
		c = st.ColumnInt64(0)
		return st.Reset()
	}); err != nil {
		t.Fatal(err)
	}
	if c != 15 {
		t.Fatalf("rollup of the first minute counts %d readings, want 15", c)
	}
	if n, err := s.compact(64); err != nil || n != 1 {
		t.Fatalf("compact = %d, %v; want the remaining minute", n, err)
	}
	if d := dirty(); len(d) != 0 {
		t.Fatalf("dirty after a full pass %v", d)
	}
}

// TestPassBound: a compaction pass includes minutes that have not ended
// only once per compactOpenEvery.
func TestPassBound(t *testing.T) {
	now := time.Unix(1_700_000_075, 0) // 35 s into a minute
	before, all := passBound(now, now.Add(-time.Second))
	if all || before != 1_700_000_040*int64(time.Second) {
		t.Fatalf("recent full pass: bound %d all %v, want the current minute's start", before, all)
	}
	if before, all = passBound(now, now.Add(-compactOpenEvery)); !all || before != math.MaxInt64 {
		t.Fatalf("full pass due: bound %d all %v", before, all)
	}
	if _, all = passBound(now, time.Time{}); !all {
		t.Fatal("first pass is not a full one")
	}
}

func openTestWriter(t *testing.T, path string) *writer {
	t.Helper()
	c, err := sqliteraw.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Exec("PRAGMA journal_mode=WAL;" + schema + rollupSchema); err != nil {
		t.Fatal(err)
	}
	c.Close()
	w, err := openWriter(path, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.close() })
	return w
}
