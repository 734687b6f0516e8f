package buswal_test

import (
	"context"
	"flag"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
	"github.com/iotplatform/iotplatform/internal/bus/buswal"
	"github.com/iotplatform/iotplatform/internal/envflag/envflagtest"
)

// groupStats reads the log's group histogram: groups and records in them.
func groupStats(t *testing.T, reg *prometheus.Registry) (groups uint64, records float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "iot_wal_group_records" {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	t.Fatal("no iot_wal_group_records")
	return 0, 0
}

func TestGroupLinger_LaterPublishesJoinTheGroup(t *testing.T) {
	for _, tc := range []struct {
		linger     time.Duration
		devices    int // GroupLingerDevices; one device publishes here
		wantGroups uint64
	}{
		{2 * time.Second, -1, 1}, // lingers: the second publish joins
		{0, -1, 2},               // no linger
		{2 * time.Second, 0, 2},  // one device is no fleet (default: 256)
		{2 * time.Second, 2, 2},
	} {
		reg := prometheus.NewRegistry()
		l, err := buswal.Open(quiet(), buswal.Config{Dir: t.TempDir(), GroupLinger: tc.linger, GroupLingerDevices: tc.devices}, reg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var first error
		wg.Add(1)
		go func() {
			defer wg.Done()
			first = l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, 1)})
		}()
		time.Sleep(100 * time.Millisecond) // the first publish is lingering (or long written)
		second := l.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, 2), bustest.Rec(1, 1, 3)})
		wg.Wait()
		if second != nil {
			t.Fatal(second)
		}
		if first != nil {
			t.Fatal(first)
		}
		if g, r := groupStats(t, reg); g != tc.wantGroups || r != 3 {
			t.Errorf("group linger %v, devices %d: %d groups of %v records in all, want %d groups of 3", tc.linger, tc.devices, g, r, tc.wantGroups)
		}
		l.Close()
	}
}

func TestFlags_Lingers(t *testing.T) {
	envflagtest.Refused[buswal.Flags](t,
		envflagtest.Bad{Flag: "wal-group-linger", Value: "-1ms"},
		envflagtest.Bad{Flag: "wal-group-linger", Value: "101ms"},
		envflagtest.Bad{Flag: "wal-max-backlog", Value: "0"},
	)
	var c buswal.Flags
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	if cfg := c.Config(); cfg.GroupLinger != 2*time.Millisecond || cfg.MaxBacklog != 500_000 {
		t.Errorf("defaults: group linger %v, backlog %d; want 2ms, 500000", cfg.GroupLinger, cfg.MaxBacklog)
	}
	if err := fs.Parse([]string{"--wal-group-linger=0"}); err != nil {
		t.Fatal(err)
	}
	if cfg := c.Config(); cfg.GroupLinger != 0 {
		t.Errorf("--wal-group-linger=0: group linger %v", cfg.GroupLinger)
	}
}
