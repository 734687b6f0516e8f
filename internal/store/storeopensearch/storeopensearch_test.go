package storeopensearch_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeopensearch"
	"github.com/iotplatform/iotplatform/internal/store/storetest"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

func open(t *testing.T, mode string) *storeopensearch.Store {
	t.Helper()
	s, _ := openPrefixed(t, mode)
	return s
}

// openPrefixed opens a store under a fresh random prefix (deleted with its
// indices when the test ends) and returns the prefix.
func openPrefixed(t testing.TB, mode string) (*storeopensearch.Store, string) {
	t.Helper()
	url := testenv.OpenSearchURL(t)
	prefix := fmt.Sprintf("test-%d", rand.Int64N(1<<40))
	s, err := storeopensearch.Open(context.Background(), slog.New(slog.DiscardHandler), storeopensearch.Config{URLs: []string{url}, Prefix: prefix, Mode: mode, Settle: time.Nanosecond})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	dropOnCleanup(t, prefix)
	t.Cleanup(func() { s.Close() })
	return s, prefix
}

// dropOnCleanup deletes a deployment's indices and template on the test
// node when the test ends.
func dropOnCleanup(t testing.TB, prefix string) {
	node := testenv.OpenSearchURL(t)
	t.Cleanup(func() {
		for _, p := range []string{"/" + prefix + "-*", "/_index_template/" + prefix + "-readings"} {
			req, _ := http.NewRequest(http.MethodDelete, node+p, nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
	})
}

// cleanupSensors deletes the per-sensor indices a test created.
type perSensor struct {
	*storeopensearch.Store
	t *testing.T
}

func (p perSensor) CreateSensorIndex(ctx context.Context, ref store.SensorRef) error {
	p.t.Cleanup(func() { _ = p.DeleteSensorIndex(context.Background(), ref) })
	return p.Store.CreateSensorIndex(ctx, ref)
}

func TestConformance(t *testing.T) {
	for _, mode := range []string{storeopensearch.ModeShared, storeopensearch.ModePerSensor} {
		t.Run(mode, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T) store.Store {
				s := open(t, mode)
				if mode == storeopensearch.ModePerSensor {
					return perSensor{s, t}
				}
				return s
			})
		})
	}
}

func TestSearchProxy_RestrictsToSensor(t *testing.T) {
	s := open(t, storeopensearch.ModeShared)
	ctx := context.Background()
	a := store.SensorRef{DeviceID: 1, SensorID: 10}
	b := store.SensorRef{DeviceID: 1, SensorID: 11}
	err := s.Write(ctx, []store.Reading{
		{DeviceID: 1, SensorID: 10, TimeNS: 1e18, Value: store.Value{Kind: store.KindDouble, Double: 1}},
		{DeviceID: 1, SensorID: 11, TimeNS: 1e18, Value: store.Value{Kind: store.KindDouble, Double: 2}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		body    string
		wantErr bool
		want    string
	}{
		{"match all sees only own sensor", `{"query":{"match_all":{}}}`, false, `"sensor_id":10`},
		{"empty body", ``, false, `"sensor_id":10`},
		{"should on other sensor cannot widen", `{"query":{"bool":{"should":[{"term":{"sensor_id":11}},{"match_all":{}}]}}}`, false, `"sensor_id":10`},
		{"global aggregation refused", `{"aggs":{"g":{"global":{},"aggs":{"m":{"max":{"field":"value_num"}}}}}}`, true, ""},
		{"terms lookup into another index refused", `{"query":{"terms":{"sensor_id":{"index":"x","id":"1","path":"a"}}}}`, true, ""},
		{"unknown top-level key refused", `{"index":"iot-readings"}`, true, ""},
		{"deeply nested query refused", `{"query":` + strings.Repeat(`{"bool":{"must":[`, 40) + `{"match_all":{}}` + strings.Repeat(`]}}`, 40) + `}`, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, status, err := s.Search(ctx, a, []byte(tc.body))
			if tc.wantErr {
				if err == nil {
					t.Fatalf("Search succeeded (%d %s), want refusal", status, raw)
				}
				return
			}
			if err != nil || status != 200 {
				t.Fatalf("Search: %d %v %s", status, err, raw)
			}
			if !strings.Contains(string(raw), tc.want) || strings.Contains(string(raw), `"sensor_id":11`) {
				t.Errorf("response %s: want only sensor 10", raw)
			}
			if strings.Contains(string(raw), "-readings") || strings.Contains(string(raw), `"_index"`) {
				t.Errorf("response %s names the internal index", raw)
			}
		})
	}
	_ = b
}

// TestPerSensor_TwoDeploymentsOnOneClusterDoNotMeet: per-sensor indices
// carry the deployment prefix, so the same device and sensor ids of two
// deployments never share (or read) an index.
func TestPerSensor_TwoDeploymentsOnOneClusterDoNotMeet(t *testing.T) {
	ctx := context.Background()
	a, b := open(t, storeopensearch.ModePerSensor), open(t, storeopensearch.ModePerSensor)
	ref := store.SensorRef{DeviceID: 3, SensorID: 4}
	for _, s := range []*storeopensearch.Store{a, b} {
		if err := s.CreateSensorIndex(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Write(ctx, []store.Reading{{DeviceID: 3, SensorID: 4, TimeNS: 1e18, Value: store.Value{Kind: store.KindLong, Long: 1}}}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*storeopensearch.Store{a, b} {
		if err := s.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	got, _, err := b.List(ctx, store.ListQuery{SensorID: 4})
	if err != nil || len(got) != 0 {
		t.Fatalf("the other deployment sees %d readings (%v)", len(got), err)
	}
	if got, _, err := a.List(ctx, store.ListQuery{SensorID: 4}); err != nil || len(got) != 1 {
		t.Fatalf("own readings: %d %v", len(got), err)
	}
	if err := b.DeleteSensorIndex(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if got, _, err := a.List(ctx, store.ListQuery{SensorID: 4}); err != nil || len(got) != 1 {
		t.Fatalf("dropping the sensor in the other deployment removed ours: %d %v", len(got), err)
	}
}
