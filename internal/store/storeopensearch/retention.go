package storeopensearch

// This file holds retention: per-minute aggregates of expired readings in
// the rollups index (<prefix>-rollups), the per-sensor raw horizon, and
// how expired raw readings go.
//
// Shared mode writes one index per UTC day (<prefix>-readings-YYYYMMDD).
// Deleting readings one by one costs OpenSearch as much as indexing them
// (every delete is a Lucene write; ~3K deletes/s took a third of ingest's
// throughput, docs/BENCHMARKS.md), so expired readings there are never
// deleted one by one: once a sensor's minutes are summarised and its raw
// horizon moved, every read hides its readings before the horizon, and a
// day index is dropped whole once every sensor with readings in it has its
// horizon at or after the end of that day.
//
// Per-sensor mode keeps its fixed index names (the original platform's
// layout), and a shared-mode deployment's legacy single <prefix>-readings
// index is still there: both get the bounded, throttled per-sensor range
// delete (`ts_ns < bound` on that sensor's index, `_delete_by_query` with
// `requests_per_second` throttling and `conflicts=proceed`), never a
// delete-by-query over everything. Retention runs on the retention runner,
// never on the write path.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/store"
)

const (
	minuteNS = int64(time.Minute)
	hourNS   = 60 * minuteNS
)

// deleteRate throttles the range delete (documents per second).
const deleteRate = 20000

var _ store.Expirer = (*Store)(nil)

func (s *Store) rollupsIndex() string { return s.cfg.Prefix + "-rollups" }

// Rollup documents (id m_<sensor>_<t>) hold a minute's summary; the horizon
// document (id h_<sensor>) says before when the sensor's raw readings were
// deleted (Aggregate answers from the rollups there).
var rollupMappings = map[string]any{
	"dynamic": "strict",
	"properties": map[string]any{
		"sensor_id": map[string]any{"type": "long"}, "t": map[string]any{"type": "date_nanos"},
		"c": map[string]any{"type": "long"}, "nc": map[string]any{"type": "long"},
		"sm": map[string]any{"type": "double"}, "mn": map[string]any{"type": "double"}, "mx": map[string]any{"type": "double"},
		"fts": map[string]any{"type": "long"}, "fv": map[string]any{"type": "double"},
		"lts": map[string]any{"type": "long"}, "lv": map[string]any{"type": "double"},
		"raw_before": map[string]any{"type": "long"}, "written_before": map[string]any{"type": "long"},
		"g": map[string]any{"type": "keyword"}, // "m" minute, "h" hour
	},
}

func (s *Store) installRollups(ctx context.Context) error {
	if err := s.createIndex(ctx, s.rollupsIndex(), map[string]any{
		"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": s.cfg.Replicas},
		"mappings": rollupMappings,
	}); err != nil {
		return err
	}
	// Rollups indices created before hour rollups (or before horizons
	// had written_before) get the fields.
	if _, err := s.do(ctx, http.MethodPut, "/"+s.rollupsIndex()+"/_mapping", map[string]any{"properties": map[string]any{
		"g": map[string]any{"type": "keyword"}, "written_before": map[string]any{"type": "long"}}}, nil); err != nil {
		return fmt.Errorf("update rollups mappings: %w", err)
	}
	return nil
}

// partial is the store contract's mergeable summary of readings.
type partial = store.Summary

type rollupDoc struct {
	SensorID int64    `json:"sensor_id"`
	G        string   `json:"g,omitempty"`
	T        string   `json:"t"`
	C        int64    `json:"c"`
	NC       int64    `json:"nc"`
	Sum      float64  `json:"sm"`
	Min      *float64 `json:"mn,omitempty"`
	Max      *float64 `json:"mx,omitempty"`
	FTS      int64    `json:"fts"`
	FV       *float64 `json:"fv,omitempty"`
	LTS      int64    `json:"lts"`
	LV       *float64 `json:"lv,omitempty"`
}

func optF(ok bool, v float64) *float64 {
	if !ok {
		return nil
	}
	return &v
}

func toRollup(sensor, t int64, p partial) rollupDoc {
	return rollupDoc{SensorID: sensor, G: "m", T: nsTime(t), C: p.Count, NC: p.NumCount, Sum: p.Sum, Min: optF(p.NumCount > 0, p.Min), Max: optF(p.NumCount > 0, p.Max),
		FTS: p.FirstTS, FV: optF(p.FirstNum, p.First), LTS: p.LastTS, LV: optF(p.LastNum, p.Last)}
}

func (d rollupDoc) partial() partial {
	return partial{Count: d.C, NumCount: d.NC, Sum: d.Sum, Min: deref(d.Min), Max: deref(d.Max), FirstTS: d.FTS, First: deref(d.FV), FirstNum: d.FV != nil,
		LastTS: d.LTS, Last: deref(d.LV), LastNum: d.LV != nil}
}

func rollupID(sensor, t int64) string {
	return "m_" + strconv.FormatInt(sensor, 10) + "_" + strconv.FormatInt(t, 10)
}

func hourID(sensor, t int64) string {
	return "H_" + strconv.FormatInt(sensor, 10) + "_" + strconv.FormatInt(t, 10)
}

func horizonID(sensor int64) string { return "h_" + strconv.FormatInt(sensor, 10) }

// horizon says how far a sensor's readings are summarised into the
// rollups: exactly the readings with ts < Raw that were written (their
// written_ns) before Written — a reading from before written_ns existed
// counts as written at 0. Every read hides the readings before Raw (they
// are expired); Aggregate adds those written since Written (arrived late,
// not summarised yet) to the rollups, so it never misses one and never
// counts one twice.
type horizon struct {
	Raw     int64 `json:"raw_before"`
	Written int64 `json:"written_before"`
}

// horizonOf returns sensor's horizon (zero: nothing summarised).
func (s *Store) horizonOf(ctx context.Context, sensor int64) (horizon, error) {
	var res struct {
		Found  bool    `json:"found"`
		Source horizon `json:"_source"`
	}
	status, err := s.do(ctx, http.MethodGet, "/"+s.rollupsIndex()+"/_doc/"+horizonID(sensor), nil, &res)
	if status == http.StatusNotFound {
		return horizon{}, nil
	}
	if err != nil {
		return horizon{}, fmt.Errorf("read retention horizon: %w", err)
	}
	return res.Source, nil
}

// rawHorizon returns the instant before which sensor's raw readings are
// expired (0: none are).
func (s *Store) rawHorizon(ctx context.Context, sensor int64) (int64, error) {
	h, err := s.horizonOf(ctx, sensor)
	return h.Raw, err
}

// horizonsOf returns the horizons of sensors (absent: zero), in one request.
func (s *Store) horizonsOf(ctx context.Context, sensors []int64) (map[int64]horizon, error) {
	out := make(map[int64]horizon, len(sensors))
	if len(sensors) == 0 {
		return out, nil
	}
	ids := make([]string, len(sensors))
	for i, id := range sensors {
		ids[i] = horizonID(id)
	}
	var res struct {
		Docs []struct {
			Found  bool `json:"found"`
			Source struct {
				SensorID int64 `json:"sensor_id"`
				horizon
			} `json:"_source"`
		} `json:"docs"`
	}
	if _, err := s.do(ctx, http.MethodPost, "/"+s.rollupsIndex()+"/_mget", map[string]any{"ids": ids}, &res); err != nil {
		return nil, fmt.Errorf("read retention horizons: %w", err)
	}
	for _, d := range res.Docs {
		if d.Found {
			out[d.Source.SensorID] = d.Source.horizon
		}
	}
	return out, nil
}

// rawHorizons returns the raw horizons of sensors (absent: 0).
func (s *Store) rawHorizons(ctx context.Context, sensors []int64) (map[int64]int64, error) {
	hs, err := s.horizonsOf(ctx, sensors)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]int64, len(hs))
	for id, h := range hs {
		out[id] = h.Raw
	}
	return out, nil
}

// writtenBefore matches the readings written before w (and those from
// before written_ns existed).
func writtenBefore(w int64) map[string]any {
	return map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
		map[string]any{"range": map[string]any{"written_ns": map[string]any{"lt": w}}},
		map[string]any{"bool": map[string]any{"must_not": map[string]any{"exists": map[string]any{"field": "written_ns"}}}},
	}}}
}

// writtenFrom matches the readings written at or after w.
func writtenFrom(w int64) map[string]any {
	return map[string]any{"range": map[string]any{"written_ns": map[string]any{"gte": w}}}
}

// aggregateRollups adds the minute rollups of [from, to) to add, bucketed
// like Aggregate (a minute starting before from counts in the first bucket).
func (s *Store) aggregateRollups(ctx context.Context, sensor, from, to int64, iv int64, add func(idx int64, p partial)) error {
	body := map[string]any{
		"size": 0,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"sensor_id": sensor}},
			map[string]any{"range": map[string]any{"t": map[string]any{"gte": nsTime(floorTo(from, hourNS)), "lt": nsTime(to)}}},
			map[string]any{"bool": map[string]any{"minimum_should_match": 1, "should": []any{
				map[string]any{"range": map[string]any{"t": map[string]any{"gte": nsTime(floorTo(from, minuteNS))}}},
				map[string]any{"term": map[string]any{"g": "h"}},
			}}},
		}}},
		"aggs": map[string]any{"b": histogram("t", from, iv, map[string]any{
			"c": map[string]any{"sum": map[string]any{"field": "c"}}, "nc": map[string]any{"sum": map[string]any{"field": "nc"}},
			"sm": map[string]any{"sum": map[string]any{"field": "sm"}}, "mn": map[string]any{"min": map[string]any{"field": "mn"}},
			"mx":    map[string]any{"max": map[string]any{"field": "mx"}},
			"first": map[string]any{"top_hits": map[string]any{"size": 1, "sort": []any{map[string]any{"fts": "asc"}}}},
			"last":  map[string]any{"top_hits": map[string]any{"size": 1, "sort": []any{map[string]any{"lts": "desc"}}}},
		})},
	}
	var res struct {
		Aggregations struct {
			B struct {
				Buckets []struct {
					Key         int64 `json:"key"`
					C, NC, SM   struct{ Value float64 }
					MN, MX      struct{ Value *float64 }
					First, Last struct {
						Hits struct{ Hits []hit } `json:"hits"`
					}
				} `json:"buckets"`
			} `json:"b"`
		} `json:"aggregations"`
	}
	if err := s.search(ctx, s.rollupsIndex(), body, &res); err != nil {
		return fmt.Errorf("read rollups: %w", err)
	}
	for _, b := range res.Aggregations.B.Buckets {
		p := partial{Count: int64(b.C.Value), NumCount: int64(b.NC.Value), Sum: b.SM.Value, Min: deref(b.MN.Value), Max: deref(b.MX.Value)}
		var f, l rollupDoc
		if len(b.First.Hits.Hits) > 0 {
			_ = json.Unmarshal(b.First.Hits.Hits[0].Source, &f)
		}
		if len(b.Last.Hits.Hits) > 0 {
			_ = json.Unmarshal(b.Last.Hits.Hits[0].Source, &l)
		}
		p.FirstTS, p.First, p.FirstNum = f.FTS, deref(f.FV), f.FV != nil
		p.LastTS, p.Last, p.LastNum = l.LTS, deref(l.LV), l.LV != nil
		add(max(0, bucketIdx(b.Key, from, iv)), p)
	}
	return nil
}

// histogram is a date_histogram of buckets [from + k*iv, ...) at
// millisecond precision.
func histogram(field string, from, iv int64, sub map[string]any) map[string]any {
	ivMS := iv / int64(time.Millisecond)
	fromMS := floorDiv(from, int64(time.Millisecond))
	offset := ((fromMS % ivMS) + ivMS) % ivMS
	return map[string]any{
		"date_histogram": map[string]any{"field": field, "fixed_interval": fmt.Sprintf("%dms", ivMS), "offset": fmt.Sprintf("%dms", offset), "min_doc_count": 1},
		"aggs":           sub,
	}
}

// bucketIdx maps a histogram key (ms, rounded bucket start) to the index
// of its bucket.
func bucketIdx(keyMS, from, iv int64) int64 {
	return floorDiv(keyMS*int64(time.Millisecond)-from+iv/2, iv)
}

func floorTo(t, g int64) int64 { return floorDiv(t, g) * g }

// Expire implements store.Expirer: it visits sensors from where the last
// call stopped and, per sensor, summarises the oldest expired readings
// (about limit in all) into minute rollups, moves the sensor's raw horizon,
// then range-deletes them. It returns the readings deleted.
func (s *Store) Expire(ctx context.Context, p store.RetentionPolicy, limit int) (_ int, retErr error) {
	if limit <= 0 || limit > store.MaxLimit {
		limit = min(5000, store.MaxLimit)
	}
	s.mu.Lock()
	cursor := s.expireCursor
	s.mu.Unlock()
	total := 0
	// The readings indices are refreshed once before the first summary (so
	// every acknowledged write is searchable before it is summarised) and
	// once after the last range delete (so the next call cannot summarise
	// a deleted reading again), not per sensor: a refresh of an index being
	// written cuts a new segment, and per-sensor refreshes cost ingest a
	// third of its throughput (docs/BENCHMARKS.md, issue #15).
	st := &expireStep{}
	// Readings written before settled are searchable by now (no bulk
	// request takes Settle): they can be summarised; later ones wait.
	settled := time.Now().Add(-s.cfg.Settle).UnixNano()
	defer func() {
		if err := s.finishExpire(context.WithoutCancel(ctx), st); err != nil && retErr == nil {
			retErr = err
		}
	}()
	for visited := 0; total < limit && visited < 256; {
		ids, err := s.sensorsAfter(ctx, cursor, 64)
		if err != nil {
			return total, err
		}
		if len(ids) == 0 {
			cursor = 0
			break
		}
		for _, id := range ids {
			visited++
			cut := floorTo(p.RawBefore(id), minuteNS)
			more := false
			if cut > 0 {
				var n int
				n, more, err = s.expireSensor(ctx, st, id, cut, settled, limit-total)
				total += n
				if err != nil {
					return total, fmt.Errorf("expire readings of sensor %d: %w", id, err)
				}
			}
			if more {
				break
			}
			cursor = id
			if total >= limit {
				break
			}
		}
	}
	s.mu.Lock()
	s.expireCursor = cursor
	s.mu.Unlock()
	if s.cfg.Mode == ModeShared {
		if err := s.dropExpiredDays(ctx); err != nil {
			return total, err
		}
	}
	if p.MinuteBeforeNS > 0 && total < limit {
		n, err := s.foldMinutes(ctx, floorTo(p.MinuteBeforeNS, hourNS), limit-total)
		total += n
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// foldMinutes merges up to limit minute rollups before `before` into
// their hour rollups and deletes them, in one bulk request.
func (s *Store) foldMinutes(ctx context.Context, before int64, limit int) (int, error) {
	body := map[string]any{
		"size": limit, "seq_no_primary_term": false,
		"query": map[string]any{"bool": map[string]any{
			"filter":   []any{map[string]any{"range": map[string]any{"t": map[string]any{"lt": nsTime(before)}}}, map[string]any{"exists": map[string]any{"field": "c"}}},
			"must_not": []any{map[string]any{"term": map[string]any{"g": "h"}}},
		}},
		"sort": []any{map[string]any{"sensor_id": "asc"}, map[string]any{"t": "asc"}},
	}
	var res searchResponse
	if err := s.search(ctx, s.rollupsIndex(), body, &res); err != nil {
		return 0, fmt.Errorf("read minute rollups: %w", err)
	}
	if len(res.Hits.Hits) == 0 {
		return 0, nil
	}
	type key struct{ sensor, hour int64 }
	hours := map[key]*partial{}
	var ids []string
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, h := range res.Hits.Hits {
		var d rollupDoc
		if err := json.Unmarshal(h.Source, &d); err != nil {
			return 0, fmt.Errorf("decode rollup: %w", err)
		}
		t, err := time.Parse(time.RFC3339Nano, d.T)
		if err != nil {
			return 0, fmt.Errorf("decode rollup: %w", err)
		}
		k := key{d.SensorID, floorTo(t.UnixNano(), hourNS)}
		if hours[k] == nil {
			hours[k] = &partial{}
			ids = append(ids, hourID(k.sensor, k.hour))
		}
		hours[k].Merge(d.partial())
		_ = enc.Encode(map[string]any{"delete": map[string]any{"_index": s.rollupsIndex(), "_id": h.ID}})
	}
	// Merge with what earlier passes folded into these hours.
	var old struct {
		Docs []struct {
			Found  bool      `json:"found"`
			Source rollupDoc `json:"_source"`
		} `json:"docs"`
	}
	if _, err := s.do(ctx, http.MethodPost, "/"+s.rollupsIndex()+"/_mget", map[string]any{"ids": ids}, &old); err != nil {
		return 0, fmt.Errorf("read hour rollups: %w", err)
	}
	for _, d := range old.Docs {
		if t, err := time.Parse(time.RFC3339Nano, d.Source.T); d.Found && err == nil {
			if p := hours[key{d.Source.SensorID, t.UnixNano()}]; p != nil {
				p.Merge(d.Source.partial())
			}
		}
	}
	for k, p := range hours {
		d := toRollup(k.sensor, k.hour, *p)
		d.G = "h"
		_ = enc.Encode(map[string]any{"index": map[string]any{"_index": s.rollupsIndex(), "_id": hourID(k.sensor, k.hour)}})
		_ = enc.Encode(d)
	}
	raw, status, err := s.raw(ctx, http.MethodPost, "/_bulk?refresh=true", "application/x-ndjson", &buf)
	if err != nil {
		return 0, err
	}
	var br bulkResponse
	if status >= 300 || json.Unmarshal(raw, &br) != nil || br.Errors {
		return 0, fmt.Errorf("fold minute rollups: %d %s", status, truncate(raw, 500))
	}
	return len(res.Hits.Hits), nil
}

// sensorsAfter lists up to n sensor ids greater than after that have readings.
func (s *Store) sensorsAfter(ctx context.Context, after int64, n int) ([]int64, error) {
	_, ids, err := s.sensorsWrittenIn(ctx, s.allReadings(), after, n)
	return ids, err
}

// nthReading returns the ts_ns and written_ns of the n-th (from 0)
// reading of sensor matching filters, in sort order.
func (s *Store) nthReading(ctx context.Context, sensor int64, filters []any, sort []any, n int) (ts, written int64, ok bool, err error) {
	body := map[string]any{
		"from": n, "size": 1, "_source": []string{"ts_ns", "written_ns"}, "track_total_hits": false,
		"query": map[string]any{"bool": map[string]any{"filter": append([]any{
			map[string]any{"term": map[string]any{"sensor_id": sensor}},
		}, filters...)}},
		"sort": sort,
	}
	var res searchResponse
	if err := s.search(ctx, s.searchIndex(sensor), body, &res); err != nil {
		return 0, 0, false, err
	}
	if len(res.Hits.Hits) == 0 {
		return 0, 0, false, nil
	}
	var d struct {
		TsNS      int64 `json:"ts_ns"`
		WrittenNS int64 `json:"written_ns"`
	}
	if err := json.Unmarshal(res.Hits.Hits[0].Source, &d); err != nil {
		return 0, 0, false, err
	}
	return d.TsNS, d.WrittenNS, true, nil
}

// tsRange matches readings with from <= ts_ns < to (from 0: no lower
// bound).
func tsRange(from, to int64) map[string]any {
	rng := map[string]any{"lt": to}
	if from > 0 {
		rng["gte"] = from
	}
	return map[string]any{"range": map[string]any{"ts_ns": rng}}
}

// writtenSort orders readings by when they were written.
var writtenSort = []any{map[string]any{"written_ns": map[string]any{"order": "asc", "missing": 0, "unmapped_type": "long"}}, map[string]any{"ts_ns": "asc"}}

// expireStep is what one Expire call refreshed and deleted from.
type expireStep struct {
	refreshed map[string]bool // indices refreshed before summarising
	deleted   map[string]bool // indices range-deleted from, refreshed at the end
}

// finishExpire makes the call's range deletes visible to searches before
// the next call summarises anything.
func (s *Store) finishExpire(ctx context.Context, st *expireStep) error {
	if len(st.deleted) == 0 {
		return nil
	}
	idx := make([]string, 0, len(st.deleted))
	for i := range st.deleted {
		idx = append(idx, i)
	}
	if _, err := s.do(ctx, http.MethodPost, "/"+strings.Join(idx, ",")+"/_refresh?allow_no_indices=true&ignore_unavailable=true", nil, nil); err != nil {
		return fmt.Errorf("refresh after deleting expired readings: %w", err)
	}
	return nil
}

// expireSensor summarises about limit of one sensor's readings and moves
// its horizon (see horizon): first the readings written behind the
// horizon since its last move (late arrivals, or writes that raced the
// last step), taken in the order they were written, then the whole
// minutes before cut, taken in time order. Only readings written before
// settled are summarised; the horizon moves past the others (they are
// expired: every read hides them) and a later step summarises them as
// late arrivals. more reports that such readings remain.
func (s *Store) expireSensor(ctx context.Context, st *expireStep, sensor, cut, settled int64, limit int) (int, bool, error) {
	idx := s.searchIndex(sensor)
	h, err := s.horizonOf(ctx, sensor)
	if err != nil {
		return 0, false, err
	}
	// writtenSince: written since the horizon last moved and before
	// `before`; late: those of them behind the horizon.
	writtenSince := func(before int64) []any {
		return []any{writtenFrom(h.Written), map[string]any{"range": map[string]any{"written_ns": map[string]any{"lt": before}}}}
	}
	late := func(before int64) []any { return append([]any{tsRange(0, h.Raw)}, writtenSince(before)...) }
	// Anything to do? (Cheap searches first: no refresh when nothing is.)
	var anyLate, anyDue bool
	if h.Raw > 0 && settled > h.Written {
		if _, _, anyLate, err = s.nthReading(ctx, sensor, late(settled), writtenSort, 0); err != nil {
			return 0, false, err
		}
	}
	if cut > h.Raw {
		if _, _, anyDue, err = s.nthReading(ctx, sensor, []any{tsRange(h.Raw, cut)}, readingSort("asc"), 0); err != nil {
			return 0, false, err
		}
	}
	if !anyLate && !anyDue {
		return 0, false, nil
	}
	// Every acknowledged write is searchable before it is summarised: the
	// first sensor of an index with work refreshes the index (in shared
	// mode one index serves every sensor of the call).
	if !st.refreshed[idx] {
		if _, err := s.do(ctx, http.MethodPost, "/"+idx+"/_refresh?allow_no_indices=true&ignore_unavailable=true", nil, nil); err != nil {
			return 0, false, err
		}
		if st.refreshed == nil {
			st.refreshed = map[string]bool{}
		}
		st.refreshed[idx] = true
	}
	next := h
	mins := map[int64]*partial{}
	summarised := 0
	addFrom := func(from int64) func(i int64, p partial) {
		return func(i int64, p partial) {
			t := from + i*minuteNS
			if m := mins[t]; m != nil {
				m.Merge(p)
			} else {
				mins[t] = &p
			}
			summarised += int(p.Count)
		}
	}
	more := false
	// 1. Written behind the horizon since it last moved, oldest writes
	// first (a whole write stamp at a time).
	if h.Raw > 0 && settled > h.Written {
		next.Written = settled
		if _, w, ok, err := s.nthReading(ctx, sensor, late(settled), writtenSort, limit); err != nil {
			return 0, false, err
		} else if ok {
			more, next.Written = true, w+1
		}
		first, _, ok, err := s.nthReading(ctx, sensor, late(next.Written), readingSort("asc"), 0)
		if err != nil {
			return 0, false, err
		}
		if ok {
			from := floorTo(first, minuteNS)
			if err := s.aggregateRaw(ctx, sensor, from, h.Raw, minuteNS, writtenSince(next.Written), addFrom(from)); err != nil {
				return 0, false, err
			}
		}
	}
	// 2. Whole minutes before cut, in time order; those written before
	// settled are summarised.
	if !more && cut > h.Raw {
		due := []any{tsRange(h.Raw, cut)}
		first, _, ok, err := s.nthReading(ctx, sensor, due, readingSort("asc"), 0)
		if err != nil {
			return 0, false, err
		}
		if ok {
			next.Written = max(next.Written, settled)
			from, bound := floorTo(first, minuteNS), cut
			if ts, _, ok, err := s.nthReading(ctx, sensor, due, readingSort("asc"), max(0, limit-summarised)); err != nil {
				return 0, false, err
			} else if ok {
				more, bound = true, max(floorTo(ts, minuteNS), from+minuteNS) // a minute is taken whole
			}
			if err := s.aggregateRaw(ctx, sensor, from, bound, minuteNS, []any{writtenBefore(next.Written)}, addFrom(from)); err != nil {
				return 0, false, err
			}
			next.Raw = max(h.Raw, bound)
		}
	}
	if next == h {
		return 0, more, nil
	}
	// Readings written behind the horizon join their minute's existing
	// rollup.
	var old []string
	for t := range mins {
		if t < h.Raw {
			old = append(old, rollupID(sensor, t))
		}
	}
	if len(old) > 0 {
		var res struct {
			Docs []struct {
				Found  bool      `json:"found"`
				Source rollupDoc `json:"_source"`
			} `json:"docs"`
		}
		if _, err := s.do(ctx, http.MethodPost, "/"+s.rollupsIndex()+"/_mget", map[string]any{"ids": old}, &res); err != nil {
			return 0, false, fmt.Errorf("read rollups: %w", err)
		}
		for _, d := range res.Docs {
			if t, err := time.Parse(time.RFC3339Nano, d.Source.T); d.Found && err == nil {
				mins[t.UnixNano()].Merge(d.Source.partial())
			}
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for t, p := range mins {
		_ = enc.Encode(map[string]any{"index": map[string]any{"_index": s.rollupsIndex(), "_id": rollupID(sensor, t)}})
		_ = enc.Encode(toRollup(sensor, t, *p))
	}
	_ = enc.Encode(map[string]any{"index": map[string]any{"_index": s.rollupsIndex(), "_id": horizonID(sensor)}})
	_ = enc.Encode(map[string]any{"sensor_id": sensor, "raw_before": next.Raw, "written_before": next.Written})
	raw, status, err := s.raw(ctx, http.MethodPost, "/_bulk?refresh=true", "application/x-ndjson", &buf)
	if err != nil {
		return 0, false, err
	}
	var br bulkResponse
	if status >= 300 || json.Unmarshal(raw, &br) != nil || br.Errors {
		return 0, false, fmt.Errorf("write rollups: %d %s", status, truncate(raw, 500))
	}
	// Only now, with the summaries and the horizon durable, the range delete
	// (shared mode: only from the legacy index; the day indices go whole,
	// dropExpiredDays). The readings summarised are expired from here on:
	// every read hides them.
	if s.cfg.Mode == ModeShared {
		if !s.legacy {
			return summarised, more, nil
		}
		idx = s.readingsIndex()
	}
	var del struct {
		Deleted  int   `json:"deleted"`
		Failures []any `json:"failures"`
	}
	// Exactly what the rollups now hold (and what earlier steps deleted).
	body := map[string]any{"query": map[string]any{"bool": map[string]any{"filter": []any{
		map[string]any{"term": map[string]any{"sensor_id": sensor}},
		tsRange(0, next.Raw), writtenBefore(next.Written),
	}}}}
	// Not refreshed here: finishExpire refreshes every index deleted from
	// once, at the end of the call.
	if st.deleted == nil {
		st.deleted = map[string]bool{}
	}
	st.deleted[idx] = true
	path := fmt.Sprintf("/%s/_delete_by_query?conflicts=proceed&slices=auto&requests_per_second=%d&allow_no_indices=true&ignore_unavailable=true", idx, deleteRate)
	if _, err := s.do(ctx, http.MethodPost, path, body, &del); err != nil {
		if !strings.Contains(err.Error(), "no handler found") {
			return 0, false, fmt.Errorf("delete expired readings: %w", err)
		}
		// A cluster without the reindex module: search the (bounded) range
		// and bulk-delete it.
		n, err := s.deleteByPages(ctx, idx, body["query"])
		if err != nil {
			return n, true, fmt.Errorf("delete expired readings: %w", err)
		}
		if s.cfg.Mode == ModeShared {
			return summarised, more, nil
		}
		return n, more, nil
	}
	if len(del.Failures) > 0 {
		return del.Deleted, true, fmt.Errorf("delete expired readings: %d failures", len(del.Failures))
	}
	if s.cfg.Mode == ModeShared {
		return summarised, more, nil
	}
	return del.Deleted, more, nil
}

// deleteRollups removes a deleted sensor's rollups and horizon.
func (s *Store) deleteRollups(ctx context.Context, sensor int64) error {
	body := map[string]any{"query": map[string]any{"term": map[string]any{"sensor_id": sensor}}}
	_, err := s.do(ctx, http.MethodPost, "/"+s.rollupsIndex()+"/_delete_by_query?refresh=true&conflicts=proceed&ignore_unavailable=true", body, nil)
	if err != nil && strings.Contains(err.Error(), "no handler found") {
		_, err = s.deleteByPages(ctx, s.rollupsIndex(), body["query"])
	}
	if err != nil {
		return fmt.Errorf("delete rollups of sensor %d: %w", sensor, err)
	}
	return nil
}
