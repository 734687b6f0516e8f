package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
)

type benchSide struct {
	st      *storeembedded.Store
	e       *Engine
	device  int64
	elapsed time.Duration
}

func newBenchSide(b *testing.B, sensors, rules int) *benchSide {
	ctx := context.Background()
	dir := b.TempDir()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(dir, "registry.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { reg.Close() })
	st, err := storeembedded.Open(ctx, slog.New(slog.DiscardHandler), storeembedded.Config{Path: filepath.Join(dir, "readings.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	u, _ := reg.CreateUser(ctx, registry.User{Username: "u", Role: registry.RoleUser, PasswordHash: "x"})
	d, _ := reg.CreateDevice(ctx, registry.Device{OwnerID: u.ID, Name: "d"})
	spec, _ := json.Marshal(Spec{Op: OpAbove, High: 1e9})
	// Both sides have the same sensors; only the rules differ. 16 writers:
	// the registry group-commits them.
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < sensors; i += 16 {
				s, err := reg.CreateSensor(ctx, registry.Sensor{DeviceID: d.ID, Name: fmt.Sprint(i), Type: registry.TypeDouble, Path: fmt.Sprint(i)})
				if err == nil && i < rules {
					_, err = reg.CreateRule(ctx, registry.Rule{OwnerID: u.ID, Name: "r", SensorID: s.ID, DeviceID: d.ID, Kind: KindThreshold, Spec: spec})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	e := NewEngine(slog.New(slog.DiscardHandler), reg, reg, st, EngineConfig{}, nil)
	if err := e.Load(ctx); err != nil {
		b.Fatal(err)
	}
	return &benchSide{st: st, e: e, device: d.ID}
}

// batch stores one batch and lets the engine evaluate it, as the pipeline
// does, timing both.
func (s *benchSide) batch(b *testing.B, rs []store.Reading) {
	ctx := context.Background()
	start := time.Now()
	if err := s.st.Write(ctx, rs); err != nil {
		b.Fatal(err)
	}
	if err := s.e.Observe(ctx, rs); err != nil {
		b.Fatal(err)
	}
	s.elapsed += time.Since(start)
}

// BenchmarkPipelineRulesAB measures what the pipeline does per stored batch
// on the embedded store — write 5,000 readings spread over 10,000 sensors,
// then evaluate them — without rules (A) and with 10,000 active threshold
// rules, one per sensor, values never crossing (B). A and B have their own
// store and registry, and their batches alternate (ABBA) within one run, so
// the load of a shared machine hits both alike; the ratio is B/A.
//
//	go test -run '^$' -bench PipelineRulesAB -benchtime 40x ./services/rules/
func BenchmarkPipelineRulesAB(b *testing.B) {
	const sensors, size = 10000, 5000
	a, r := newBenchSide(b, sensors, 0), newBenchSide(b, sensors, 10000)
	time.Sleep(2 * time.Second) // let the registries' log checkpoints settle
	t0 := time.Now().UnixNano()
	rs := make([]store.Reading, size)
	fill := func(i int, device int64) {
		for j := range rs {
			n := i*size + j
			rs[j] = store.Reading{DeviceID: device, SensorID: int64(n%sensors) + 1, TimeNS: t0 + int64(n), Value: store.Value{Kind: store.KindDouble, Double: float64(n % 100)}}
		}
	}
	b.ResetTimer()
	for i := range b.N {
		order := []*benchSide{a, r}
		if i%2 == 1 {
			order = []*benchSide{r, a}
		}
		for _, s := range order {
			fill(i, s.device)
			s.batch(b, rs)
		}
	}
	ra := float64(b.N*size) / a.elapsed.Seconds()
	rr := float64(b.N*size) / r.elapsed.Seconds()
	b.ReportMetric(ra, "readings/s-no-rules")
	b.ReportMetric(rr, "readings/s-10k-rules")
	b.ReportMetric(rr/ra, "ratio")
}
