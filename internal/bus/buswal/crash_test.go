package buswal_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
)

// The crash child: publishes unique records from several goroutines,
// printing "ack <seq>..." once Publish returned nil, while a subscriber
// "stores" them by appending their seqs to store.bin with an fsync (like the
// pipeline's store commit), sometimes slowly so kills also land in the
// apply. It runs until the parent kills it with SIGKILL.
const crashDirEnv = "BUSWAL_CRASH_DIR"

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashDirEnv)
	if dir == "" {
		t.Skip("helper process for TestCrash_KillNineLosesNoAcknowledgedRecord")
	}
	base, _ := strconv.ParseInt(os.Getenv("BUSWAL_CRASH_BASE"), 10, 64)
	cfg := crashConfig(dir)
	// Odd rounds kill a log whose group commit lingers: publishes waiting
	// in a group that is not yet written must not have been acked.
	cfg.GroupLinger, _ = time.ParseDuration(os.Getenv("BUSWAL_CRASH_LINGER"))
	l, err := buswal.Open(quiet(), cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "open:", err)
		os.Exit(3)
	}
	st, err := os.OpenFile(filepath.Join(dir, "store.bin"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		os.Exit(4)
	}
	go l.Subscribe(context.Background(), storeHandler(st, true))
	var seq atomic.Int64
	seq.Store(base)
	var outMu sync.Mutex
	for g := 0; g < 8; g++ {
		go func() {
			for {
				n := 1 + rand.IntN(5)
				recs := make([]*busv1.Record, n)
				line := []byte("ack")
				for i := range recs {
					s := seq.Add(1)
					recs[i] = bustest.Rec(int64(g), 1, s)
					line = append(line, ' ')
					line = strconv.AppendInt(line, s, 10)
				}
				if err := l.Publish(context.Background(), recs); err != nil {
					continue
				}
				outMu.Lock()
				os.Stdout.Write(append(line, '\n'))
				outMu.Unlock()
			}
		}()
	}
	select {}
}

func crashConfig(dir string) buswal.Config {
	return buswal.Config{Dir: filepath.Join(dir, "wal"), SegmentBytes: 8 << 10, MaxApplyBatch: 64, MaxBacklog: 2000}
}

// storeHandler appends each record's seq to st and syncs it.
func storeHandler(st *os.File, slow bool) func(context.Context, []*busv1.Record) error {
	return func(_ context.Context, recs []*busv1.Record) error {
		buf := make([]byte, 0, 8*len(recs))
		for _, r := range recs {
			buf = binary.LittleEndian.AppendUint64(buf, uint64(r.GetTimestampNs()))
		}
		if _, err := st.Write(buf); err != nil {
			return err
		}
		if slow && rand.IntN(4) == 0 {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
		return st.Sync()
	}
}

func TestCrash_KillNineLosesNoAcknowledgedRecord(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns and kills child processes")
	}
	dir := t.TempDir()
	acked := map[int64]bool{}
	const rounds = 12
	for round := 0; round < rounds; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashDirEnv+"="+dir, fmt.Sprintf("BUSWAL_CRASH_BASE=%d", int64(round)*1_000_000_000),
			fmt.Sprintf("BUSWAL_CRASH_LINGER=%dms", 2*(round%2)))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		got := make(chan []int64, 1)
		go func() {
			var seqs []int64
			sc := bufio.NewScanner(out)
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) == 0 || f[0] != "ack" {
					continue
				}
				for _, s := range f[1:] {
					n, err := strconv.ParseInt(s, 10, 64)
					if err == nil {
						seqs = append(seqs, n)
					}
				}
			}
			got <- seqs
		}()
		time.Sleep(time.Duration(150+rand.IntN(400)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		seqs := <-got
		_ = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() {
			t.Fatalf("round %d: child ended on its own (%v): %s", round, cmd.ProcessState, stderr.String())
		}
		for _, s := range seqs {
			acked[s] = true
		}
		t.Logf("round %d: %d records acknowledged before kill -9", round, len(seqs))
	}
	if len(acked) == 0 {
		t.Fatal("no record was acknowledged in any round")
	}
	// Recover in this process and apply what is left.
	l, err := buswal.Open(quiet(), crashConfig(dir), nil)
	if err != nil {
		t.Fatalf("Open after kill -9: %v", err)
	}
	defer l.Close()
	st, err := os.OpenFile(filepath.Join(dir, "store.bin"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Subscribe(ctx, storeHandler(st, false)) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, _, backlog := l.Stats(); backlog == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("recovered backlog not applied in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "store.bin"))
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]int{}
	for i := 0; i+8 <= len(data); i += 8 {
		stored[int64(binary.LittleEndian.Uint64(data[i:]))]++
	}
	lost := 0
	for s := range acked {
		if stored[s] == 0 {
			lost++
			if lost < 5 {
				t.Errorf("acknowledged record %d never reached the store", s)
			}
		}
	}
	if lost > 0 {
		t.Fatalf("%d of %d acknowledged records lost", lost, len(acked))
	}
	replays := 0
	for _, n := range stored {
		replays += n - 1
	}
	t.Logf("%d acknowledged, %d distinct stored, %d applied twice (replay after a kill; idempotent in the real store)", len(acked), len(stored), replays)
}
