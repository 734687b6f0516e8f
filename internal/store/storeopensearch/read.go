package storeopensearch

// This file holds the range, aggregate and latest queries.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

type hit struct {
	ID     string          `json:"_id"`
	Source json.RawMessage `json:"_source"`
	Sort   []any           `json:"sort"`
}

type searchResponse struct {
	Hits struct {
		Hits []hit `json:"hits"`
	} `json:"hits"`
	Aggregations json.RawMessage `json:"aggregations"`
}

func (s *Store) search(ctx context.Context, index string, body any, out any) error {
	_, err := s.do(ctx, http.MethodPost, "/"+index+"/_search?allow_no_indices=true&ignore_unavailable=true", body, out)
	return err
}

func decodeReading(h hit) (store.Reading, error) {
	var d struct {
		doc
		Received string `json:"received"`
	}
	if err := json.Unmarshal(h.Source, &d); err != nil {
		return store.Reading{}, fmt.Errorf("decode reading document: %w", err)
	}
	var recv int64
	if t, err := time.Parse(time.RFC3339Nano, d.Received); err == nil {
		recv = t.UnixNano()
	}
	return fromDoc(d.doc, recv), nil
}

// List returns a page of one sensor's readings.
func (s *Store) List(ctx context.Context, q store.ListQuery) ([]store.Reading, bool, error) {
	limit := store.ClampLimit(q.Limit, 100)
	// Readings before the sensor's raw horizon are expired: invisible even
	// while their day index still exists (another sensor keeps it).
	horizon, err := s.rawHorizon(ctx, q.SensorID)
	if err != nil {
		return nil, false, fmt.Errorf("list readings: %w", err)
	}
	rng := map[string]any{"gte": max(q.FromNS, horizon)}
	if q.ToNS != 0 {
		rng["lt"] = q.ToNS
	}
	dir := "asc"
	if q.Order == store.Descending {
		dir = "desc"
	}
	body := map[string]any{
		"size": limit + 1,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"sensor_id": q.SensorID}},
			map[string]any{"range": map[string]any{"ts_ns": rng}},
		}}},
		"sort":             readingSort(dir),
		"track_total_hits": false,
	}
	if q.HasAfter {
		body["search_after"] = []int64{q.AfterNS, q.AfterSeq}
	}
	var res searchResponse
	if err := s.search(ctx, s.searchIndex(q.SensorID), body, &res); err != nil {
		return nil, false, fmt.Errorf("list readings: %w", err)
	}
	out := make([]store.Reading, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		r, err := decodeReading(h)
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// Aggregate runs a date_histogram (millisecond bucket precision) with stats
// and first/last top hits per bucket over the raw readings; before the
// sensor's raw horizon (retention deleted the raw readings) the minute
// rollups answer.
func (s *Store) Aggregate(ctx context.Context, q store.AggregateQuery) ([]store.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	iv := int64(q.Interval)
	acc := map[int64]*partial{}
	add := func(idx int64, p partial) {
		a := acc[idx]
		if a == nil {
			a = &partial{}
			acc[idx] = a
		}
		a.Merge(p)
	}
	h, err := s.horizonOf(ctx, q.SensorID)
	if err != nil {
		return nil, fmt.Errorf("aggregate readings: %w", err)
	}
	var filters []any
	if h.Raw > q.FromNS {
		// Before the horizon the rollups answer, plus the raw readings
		// written there since the rollups were made (not summarised yet).
		if err := s.aggregateRollups(ctx, q.SensorID, q.FromNS, min(h.Raw, q.ToNS), iv, add); err != nil {
			return nil, fmt.Errorf("aggregate readings: %w", err)
		}
		filters = []any{map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
			map[string]any{"range": map[string]any{"ts_ns": map[string]any{"gte": h.Raw}}},
			writtenFrom(h.Written),
		}}}}
	}
	if err := s.aggregateRaw(ctx, q.SensorID, q.FromNS, q.ToNS, iv, filters, add); err != nil {
		return nil, fmt.Errorf("aggregate readings: %w", err)
	}
	idxs := make([]int64, 0, len(acc))
	for i := range acc {
		idxs = append(idxs, i)
	}
	slices.Sort(idxs)
	out := make([]store.Bucket, len(idxs))
	for i, idx := range idxs {
		out[i] = acc[idx].Bucket(q.FromNS + idx*iv)
	}
	return out, nil
}

// aggregateRaw summarises the raw readings of [from, to) that match
// filters into buckets of iv starting at from.
func (s *Store) aggregateRaw(ctx context.Context, sensor, from, to, iv int64, filters []any, add func(idx int64, p partial)) error {
	topHit := func(dir string) map[string]any {
		return map[string]any{"top_hits": map[string]any{"size": 1, "sort": readingSort(dir), "_source": []string{"value_num", "ts_ns"}}}
	}
	body := map[string]any{
		"size": 0,
		"query": map[string]any{"bool": map[string]any{"filter": append([]any{
			map[string]any{"term": map[string]any{"sensor_id": sensor}},
			map[string]any{"range": map[string]any{"ts_ns": map[string]any{"gte": from, "lt": to}}},
		}, filters...)}},
		"aggs": map[string]any{"b": histogram("timestamp", from, iv, map[string]any{
			"st":    map[string]any{"stats": map[string]any{"field": "value_num"}},
			"first": topHit("asc"),
			"last":  topHit("desc"),
		})},
	}
	var res struct {
		Aggregations struct {
			B struct {
				Buckets []struct {
					Key      int64 `json:"key"`
					DocCount int64 `json:"doc_count"`
					St       struct {
						Count    int64
						Min, Max *float64
						Sum      float64
					} `json:"st"`
					First struct {
						Hits struct{ Hits []hit } `json:"hits"`
					} `json:"first"`
					Last struct {
						Hits struct{ Hits []hit } `json:"hits"`
					} `json:"last"`
				} `json:"buckets"`
			} `json:"b"`
		} `json:"aggregations"`
	}
	if err := s.search(ctx, s.searchIndex(sensor), body, &res); err != nil {
		return err
	}
	for _, b := range res.Aggregations.B.Buckets {
		p := partial{Count: b.DocCount, NumCount: b.St.Count, Sum: b.St.Sum, Min: deref(b.St.Min), Max: deref(b.St.Max)}
		p.FirstTS, p.First, p.FirstNum = hitTSNum(b.First.Hits.Hits)
		p.LastTS, p.Last, p.LastNum = hitTSNum(b.Last.Hits.Hits)
		add(bucketIdx(b.Key, from, iv), p)
	}
	return nil
}

func hitTSNum(hs []hit) (int64, float64, bool) {
	if len(hs) == 0 {
		return 0, 0, false
	}
	var d struct {
		TsNS     int64    `json:"ts_ns"`
		ValueNum *float64 `json:"value_num"`
	}
	_ = json.Unmarshal(hs[0].Source, &d)
	return d.TsNS, deref(d.ValueNum), d.ValueNum != nil
}

// readingSort orders readings by their identity (ts_ns, seq); documents
// written before seq existed sort as seq 0.
func readingSort(dir string) []any {
	return []any{
		map[string]any{"ts_ns": map[string]any{"order": dir}},
		map[string]any{"seq": map[string]any{"order": dir, "missing": 0, "unmapped_type": "long"}},
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// Latest returns the newest reading of each sensor (field collapsing).
func (s *Store) Latest(ctx context.Context, sensorIDs []int64) ([]store.Reading, error) {
	if len(sensorIDs) == 0 {
		return nil, nil
	}
	idx := s.readingsPattern()
	if s.cfg.Mode == ModePerSensor {
		names := make([]string, len(sensorIDs))
		for i, id := range sensorIDs {
			names[i] = s.searchIndex(id)
		}
		idx = strings.Join(names, ",")
	}
	body := map[string]any{
		"size":             len(sensorIDs),
		"query":            map[string]any{"terms": map[string]any{"sensor_id": sensorIDs}},
		"collapse":         map[string]any{"field": "sensor_id"},
		"sort":             readingSort("desc"),
		"track_total_hits": false,
	}
	var res searchResponse
	if err := s.search(ctx, idx, body, &res); err != nil {
		return nil, fmt.Errorf("latest readings: %w", err)
	}
	out := make([]store.Reading, 0, len(res.Hits.Hits))
	for _, h := range res.Hits.Hits {
		r, err := decodeReading(h)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return out, nil
	}
	// A sensor whose newest reading is before its raw horizon has no
	// unexpired reading (they all are older): it has none to show.
	ids := make([]int64, len(out))
	for i, r := range out {
		ids[i] = r.SensorID
	}
	horizons, err := s.rawHorizons(ctx, ids)
	if err != nil {
		return nil, fmt.Errorf("latest readings: %w", err)
	}
	return slices.DeleteFunc(out, func(r store.Reading) bool { return r.TimeNS < horizons[r.SensorID] }), nil
}
