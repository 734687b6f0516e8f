package buswal_test

import (
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
)

// TestSyncApplied_CheckpointTrailsTheSync: with a syncer (the store's fsync)
// the checkpoint never covers a record applied after the last successful
// sync, the segments stay on disk while the sync fails, and stopping the
// subscriber checkpoints the rest.
func TestSyncApplied_CheckpointTrailsTheSync(t *testing.T) {
	dir := t.TempDir()
	// SegmentBytes 1: every append after the first starts a new segment.
	l := open(t, buswal.Config{Dir: dir, SegmentBytes: 1, SyncEvery: time.Hour, ApplyInterval: -1})
	defer l.Close()
	var syncs, fail atomic.Int64
	fail.Store(1)
	l.SetSyncApplied(func() error {
		syncs.Add(1)
		if fail.Load() == 1 {
			return errors.New("disk says no")
		}
		return nil
	})
	s := stepper(t, l)
	s.publish(1)
	s.publish(2)
	s.publish(3) // the checkpoint steps of 1 and 2 ran; both syncs failed
	if got := syncs.Load(); got != 2 {
		t.Fatalf("syncs = %d, want 2", got)
	}
	if c := checkpointOf(t, dir); c != 0 {
		t.Fatalf("checkpoint %d after failed syncs, want 0", c)
	}
	if n := segmentFiles(t, dir); n != 3 {
		t.Fatalf("%d segments on disk after failed syncs, want all 3 kept", n)
	}
	fail.Store(0)
	s.publish(4) // the step of 3 synced and checkpointed 3
	if c := checkpointOf(t, dir); c != 3 {
		t.Fatalf("checkpoint %d after a successful sync, want 3", c)
	}
	s.stop()
	if c := checkpointOf(t, dir); c != 4 {
		t.Fatalf("checkpoint %d after the subscriber stopped, want 4", c)
	}
}

// TestSyncApplied_SpacedBySyncEvery: without segments to delete, a
// checkpoint (and its sync) waits for SyncEvery.
func TestSyncApplied_SpacedBySyncEvery(t *testing.T) {
	dir := t.TempDir()
	l := open(t, buswal.Config{Dir: dir, SyncEvery: time.Hour, ApplyInterval: -1})
	defer l.Close()
	var syncs atomic.Int64
	l.SetSyncApplied(func() error { syncs.Add(1); return nil })
	s := stepper(t, l)
	for i := int64(1); i <= 5; i++ {
		s.publish(i)
	}
	// The steps of 1…4 ran: the first checkpointed, the others wait an hour.
	if got, c := syncs.Load(), checkpointOf(t, dir); got != 1 || c != 1 {
		t.Fatalf("syncs %d, checkpoint %d; want 1 and 1", got, c)
	}
	s.stop()
	if got, c := syncs.Load(), checkpointOf(t, dir); got != 2 || c != 5 {
		t.Fatalf("after stop: syncs %d, checkpoint %d; want 2 and 5", got, c)
	}
}

// steps drives a subscriber one record at a time: its handler holds each
// batch until the next publish, so when publish returns the checkpoint step
// of every earlier batch has run and the current one's has not.
type steps struct {
	t        *testing.T
	l        *buswal.Log
	applied  chan int
	release  chan struct{}
	held     bool
	cancel   context.CancelFunc
	finished chan error
}

func stepper(t *testing.T, l *buswal.Log) *steps {
	ctx, cancel := context.WithCancel(context.Background())
	s := &steps{t: t, l: l, applied: make(chan int, 1), release: make(chan struct{}), cancel: cancel, finished: make(chan error, 1)}
	go func() {
		s.finished <- l.Subscribe(ctx, func(_ context.Context, recs []*busv1.Record) error {
			s.applied <- len(recs)
			<-s.release
			return nil
		})
	}()
	t.Cleanup(func() {
		if s.held {
			close(s.release)
		}
		cancel()
	})
	return s
}

func (s *steps) publish(seq int64) {
	s.t.Helper()
	if s.held {
		s.release <- struct{}{}
	}
	if err := s.l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, seq)}); err != nil {
		s.t.Fatal(err)
	}
	select {
	case <-s.applied:
		s.held = true
	case <-time.After(10 * time.Second):
		s.t.Fatal("record not applied")
	}
}

// stop lets the held batch finish and stops the subscriber.
func (s *steps) stop() {
	s.t.Helper()
	if s.held {
		s.release <- struct{}{}
		s.held = false
	}
	// Wait until the released batch is applied before stopping.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, _, backlog := s.l.Stats(); backlog == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	s.cancel()
	if err := <-s.finished; err != nil {
		s.t.Fatal(err)
	}
}

func checkpointOf(t *testing.T, dir string) uint64 {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "applied"))
	if errors.Is(err, os.ErrNotExist) || len(b) == 0 {
		return 0
	}
	if err != nil || len(b) != 12 {
		t.Fatalf("checkpoint file: %v (%d bytes)", err, len(b))
	}
	return binary.LittleEndian.Uint64(b)
}

func segmentFiles(t *testing.T, dir string) int {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range es {
		if strings.HasSuffix(e.Name(), ".wal") {
			n++
		}
	}
	return n
}
