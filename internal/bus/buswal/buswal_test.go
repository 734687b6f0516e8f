package buswal_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, cfg buswal.Config) *buswal.Log {
	t.Helper()
	l, err := buswal.Open(quiet(), cfg, nil)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.Backend {
		l := open(t, buswal.Config{Dir: t.TempDir(), SegmentBytes: 4 << 10})
		t.Cleanup(func() { l.Close() })
		return bustest.Backend{
			Pub:    l,
			NewSub: func() bus.Subscriber { return l },
			Unavailable: func() bus.Publisher {
				// A full backlog with nobody applying it.
				u := open(t, buswal.Config{Dir: t.TempDir(), MaxBacklog: 1, PublishTimeout: 200 * time.Millisecond})
				t.Cleanup(func() { u.Close() })
				if err := u.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, 1)}); err != nil {
					t.Fatalf("first Publish: %v", err)
				}
				return u
			},
		}
	})
}

// drain subscribes to l until n records were seen (or fails) and returns them.
func drain(t *testing.T, l *buswal.Log, n int) []*busv1.Record {
	t.Helper()
	var mu sync.Mutex
	var seen []*busv1.Record
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Subscribe(ctx, func(_ context.Context, recs []*busv1.Record) error {
			mu.Lock()
			seen = append(seen, recs...)
			mu.Unlock()
			return nil
		})
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		got := len(seen)
		mu.Unlock()
		if got >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Let the checkpoint of the last batch happen before stopping.
	for time.Now().Before(deadline) {
		if _, _, backlog := l.Stats(); backlog == 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Subscribe: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) < n {
		t.Fatalf("saw %d records, want %d", len(seen), n)
	}
	return seen
}

func publishN(t *testing.T, l *buswal.Log, from, n int64) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 10, i)}); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
}

func TestReopen_ReplaysOnlyWhatWasNotApplied(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir, SegmentBytes: 512})
	publishN(t, l, 0, 50)
	drain(t, l, 50)
	publishN(t, l, 50, 30) // durable, never applied
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = open(t, buswal.Config{Dir: dir, SegmentBytes: 512})
	defer l.Close()
	seen := drain(t, l, 30)
	if len(seen) != 30 || seen[0].GetTimestampNs() != 50 || seen[29].GetTimestampNs() != 79 {
		t.Fatalf("after reopen the handler got %d records starting at %d, want exactly 50..79", len(seen), seen[0].GetTimestampNs())
	}
	next, applied, _ := l.Stats()
	if next != 80 || applied != 80 {
		t.Fatalf("offsets next=%d applied=%d, want 80/80", next, applied)
	}
}

func TestApplied_SegmentsAreDeleted(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir, SegmentBytes: 256})
	defer l.Close()
	publishN(t, l, 0, 200)
	if segs := segments(t, dir); len(segs) < 10 {
		t.Fatalf("want many segments before applying, got %d", len(segs))
	}
	drain(t, l, 200)
	publishN(t, l, 200, 1) // the deletion runs on the next apply after a rotation at the latest
	drain(t, l, 1)
	if segs := segments(t, dir); len(segs) > 2 {
		t.Fatalf("applied segments were not deleted: %v", segs)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.wal"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestOpen_TruncatesTornLastRecord(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir})
	publishN(t, l, 0, 10)
	l.Close()
	segs := segments(t, dir)
	last := segs[len(segs)-1]
	fi, err := os.Stat(last)
	if err != nil {
		t.Fatal(err)
	}
	// Cut the last record in half, as a crash in the middle of a write would.
	if err := os.Truncate(last, fi.Size()-5); err != nil {
		t.Fatal(err)
	}
	l = open(t, buswal.Config{Dir: dir})
	seen := drain(t, l, 9)
	if len(seen) != 9 || seen[8].GetTimestampNs() != 8 {
		t.Fatalf("after a torn tail want records 0..8, got %d", len(seen))
	}
	// Appending continues after the truncated record.
	publishN(t, l, 9, 1)
	l.Close()
	l = open(t, buswal.Config{Dir: dir})
	defer l.Close()
	if next, applied, backlog := l.Stats(); next != 10 || applied != 9 || backlog != 1 {
		t.Fatalf("after append past a torn tail: next=%d applied=%d backlog=%d, want 10/9/1", next, applied, backlog)
	}
}

// frames returns the byte offset of every frame in a segment.
func frames(t *testing.T, data []byte) []int {
	t.Helper()
	var out []int
	for pos := 0; pos+12 <= len(data); pos += 12 + int(binary.LittleEndian.Uint32(data[pos:])) {
		out = append(out, pos)
	}
	return out
}

func TestOpen_CorruptSegmentIsAnError(t *testing.T) {
	for _, tc := range []struct {
		name string
		// at returns the byte to damage given the frame offsets.
		at func(fr []int) int
	}{
		{"FirstRecordPayload", func(fr []int) int { return fr[0] + 14 }},
		{"MiddleRecordLength", func(fr []int) int { return fr[10] }},
		{"MiddleRecordChecksum", func(fr []int) int { return fr[10] + 9 }},
		{"NextToLastRecordPayload", func(fr []int) int { return fr[len(fr)-2] + 13 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			l := open(t, buswal.Config{Dir: dir})
			publishN(t, l, 0, 20)
			l.Close()
			seg := segments(t, dir)[0]
			data, err := os.ReadFile(seg)
			if err != nil {
				t.Fatal(err)
			}
			fr := frames(t, data)
			if len(fr) != 20 {
				t.Fatalf("segment has %d frames, want 20", len(fr))
			}
			data[tc.at(fr)] ^= 0x5a
			if err := os.WriteFile(seg, data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err = buswal.Open(quiet(), buswal.Config{Dir: dir}, nil)
			if !errors.Is(err, buswal.ErrCorrupt) {
				t.Fatalf("Open on a damaged segment = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpen_DamagedLastRecordIsTorn(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir})
	publishN(t, l, 0, 20)
	l.Close()
	seg := segments(t, dir)[0]
	data, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0x5a // the last record's payload never fully reached the disk
	data = append(data, make([]byte, 100)...)
	if err := os.WriteFile(seg, data, 0o644); err != nil {
		t.Fatal(err)
	}
	l = open(t, buswal.Config{Dir: dir})
	defer l.Close()
	if next, _, backlog := l.Stats(); next != 19 || backlog != 19 {
		t.Fatalf("after a damaged last record: next=%d backlog=%d, want 19/19", next, backlog)
	}
}

func TestOpen_MissingSegmentIsAnError(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir, SegmentBytes: 200})
	publishN(t, l, 0, 40)
	l.Close()
	segs := segments(t, dir)
	if len(segs) < 3 {
		t.Fatalf("want at least 3 segments, got %d", len(segs))
	}
	if err := os.Remove(segs[1]); err != nil {
		t.Fatal(err)
	}
	if _, err := buswal.Open(quiet(), buswal.Config{Dir: dir, SegmentBytes: 200}, nil); !errors.Is(err, buswal.ErrCorrupt) {
		t.Fatalf("Open with a segment missing = %v, want ErrCorrupt", err)
	}
}

func TestOpen_DirInUseIsRefused(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir})
	defer l.Close()
	if _, err := buswal.Open(quiet(), buswal.Config{Dir: dir}, nil); err == nil {
		t.Fatal("a second Open of the same dir succeeded")
	}
}

func TestPublish_FullBacklogWaitsThenRefuses(t *testing.T) {
	l := open(t, buswal.Config{Dir: t.TempDir(), MaxBacklog: 10, PublishTimeout: 300 * time.Millisecond})
	defer l.Close()
	publishN(t, l, 0, 10)
	err := l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 10, 10)})
	if !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Publish over the backlog bound = %v, want ErrUnavailable", err)
	}
	// Once the handler applies the backlog there is room again.
	res := make(chan error, 1)
	go func() { res <- l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 10, 10)}) }()
	seen := drain(t, l, 11)
	if err := <-res; err != nil {
		t.Fatalf("Publish after the backlog drained = %v", err)
	}
	if len(seen) != 11 {
		t.Fatalf("handler saw %d records, want 11", len(seen))
	}
}

func TestPublish_AfterCloseIsUnavailable(t *testing.T) {
	l := open(t, buswal.Config{Dir: t.TempDir()})
	l.Close()
	if err := l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, 1)}); !errors.Is(err, bus.ErrUnavailable) {
		t.Fatalf("Publish after Close = %v, want ErrUnavailable", err)
	}
}

func TestSubscribe_HandlerErrorRedeliversSameBatch(t *testing.T) {
	l := open(t, buswal.Config{Dir: t.TempDir()})
	defer l.Close()
	publishN(t, l, 0, 5)
	calls := 0
	var got []int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- l.Subscribe(ctx, func(_ context.Context, recs []*busv1.Record) error {
			calls++
			if calls == 1 {
				return errors.New("store down")
			}
			for _, r := range recs {
				got = append(got, r.GetTimestampNs())
			}
			cancel()
			return nil
		})
	}()
	<-done
	if len(got) != 5 || got[0] != 0 || got[4] != 4 {
		t.Fatalf("after a handler error the batch was redelivered as %v, want 0..4", got)
	}
	if _, applied, _ := l.Stats(); applied != 5 {
		t.Fatalf("applied = %d, want 5", applied)
	}
}

func BenchmarkPublish(b *testing.B) {
	for _, conc := range []int{1, 64} {
		b.Run("conc="+itoa(conc), func(b *testing.B) {
			l, err := buswal.Open(quiet(), buswal.Config{Dir: b.TempDir()}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go l.Subscribe(ctx, func(context.Context, []*busv1.Record) error { return nil })
			b.SetParallelism(conc)
			b.RunParallel(func(pb *testing.PB) {
				recs := []*busv1.Record{bustest.Rec(1, 1, 1)}
				for pb.Next() {
					if err := l.Publish(ctx, recs); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func itoa(n int) string {
	return string(rune('0'+n/10%10)) + string(rune('0'+n%10))
}

func TestWaitApplied_WaitsForWhatWasAcknowledgedBefore(t *testing.T) {
	l := open(t, buswal.Config{Dir: t.TempDir()})
	defer l.Close()
	publishN(t, l, 0, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	err := l.WaitApplied(ctx)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitApplied with nothing applying = %v, want a timeout", err)
	}
	applied := make(chan struct{})
	go l.Subscribe(t.Context(), func(context.Context, []*busv1.Record) error {
		time.Sleep(20 * time.Millisecond)
		close(applied)
		return nil
	})
	if err := l.WaitApplied(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-applied:
	default:
		t.Fatal("WaitApplied returned before the handler applied the records")
	}
	if _, a, _ := l.Stats(); a != 3 {
		t.Fatalf("applied = %d after WaitApplied, want 3", a)
	}
}

// TestApplyInterval_BatchesUnderLoadNotAfterQuiet: the first record after a
// quiet spell is applied at once, the next ones wait for the interval to
// pass since the last handler call — unless a full batch waits.
func TestApplyInterval_BatchesUnderLoadNotAfterQuiet(t *testing.T) {
	l := open(t, buswal.Config{Dir: t.TempDir(), ApplyInterval: time.Hour, MaxApplyBatch: 10})
	defer l.Close()
	calls := make(chan int, 16)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = l.Subscribe(ctx, func(_ context.Context, recs []*busv1.Record) error {
			calls <- len(recs)
			return nil
		})
	}()
	publish := func(n int) {
		t.Helper()
		recs := make([]*busv1.Record, n)
		for i := range recs {
			recs[i] = bustest.Rec(1, 1, int64(i+1))
		}
		if err := l.Publish(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	publish(1)
	select {
	case n := <-calls: // no earlier call: applied without waiting an hour
		if n != 1 {
			t.Fatalf("first call got %d records, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("first record after a quiet spell was not applied")
	}
	publish(3)
	select {
	case n := <-calls:
		t.Fatalf("a call of %d records within the interval", n)
	case <-time.After(300 * time.Millisecond):
	}
	publish(7) // 10 waiting: a full batch goes at once
	select {
	case n := <-calls:
		if n != 10 {
			t.Fatalf("full batch call got %d records, want 10", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a full batch waited for the interval")
	}
}
