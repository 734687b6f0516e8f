// Package storeopensearch is the scaled time-series store: OpenSearch via
// opensearch-go v4, bulk indexing with deterministic document ids
// (`<sensor_id>_<timestamp_ns>`, `_<seq>` appended when seq is not 0), an index template the platform installs
// itself (date_nanos timestamps, one typed field per value type, objects as
// flat_object), and an optional per-sensor index mode named like the
// original platform, behind the deployment's prefix (`<prefix>-<device_id>_<sensor_id>`,
// so deployments sharing a cluster never meet).
package storeopensearch

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/opensearch-project/opensearch-go/v4"

	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Index modes.
const (
	ModeShared    = "shared"
	ModePerSensor = "per-sensor"
)

// Config selects the cluster and the index layout.
type Config struct {
	// URLs of the cluster nodes.
	URLs []string
	// Prefix names the shared indices (<prefix>-readings,
	// <prefix>-deadletters) and the template (default "iot").
	Prefix string
	// Mode is ModeShared (default) or ModePerSensor.
	Mode string
	// Replicas per shard (0 on a single node).
	Replicas int
	// Shards of each readings index (default 1).
	Shards int
	// Username and Password, when Username is set, are sent as HTTP basic
	// auth on every request. The password is never logged.
	Username, Password string
	// CAFile is a PEM bundle verifying the nodes' HTTPS certificates, for a
	// cluster with a private CA; empty uses the system roots.
	CAFile string
}

// Store implements store.Store on OpenSearch.
type Store struct {
	log  *slog.Logger
	cfg  Config
	c    *opensearch.Client
	feed *store.Feed

	mu      sync.Mutex
	indices map[string]bool // per-sensor indices known to exist
}

// Open connects, installs the index template and creates the shared indices.
func Open(ctx context.Context, log *slog.Logger, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "iot"
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeShared
	}
	if cfg.Shards <= 0 {
		cfg.Shards = 1
	}
	if cfg.Mode != ModeShared && cfg.Mode != ModePerSensor {
		return nil, fmt.Errorf("opensearch index mode %q: want %s or %s", cfg.Mode, ModeShared, ModePerSensor)
	}
	oc := opensearch.Config{Addresses: cfg.URLs, MaxRetries: 3, HealthCheckMaxRetries: -1, Username: cfg.Username, Password: cfg.Password}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("opensearch CA file: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("opensearch CA file %s: no PEM certificate in it", cfg.CAFile)
		}
		oc.CACert = pem
	}
	c, err := opensearch.NewClient(oc)
	if err != nil {
		return nil, fmt.Errorf("opensearch client: %w", err)
	}
	s := &Store{log: log, cfg: cfg, c: c, feed: store.NewFeed(), indices: map[string]bool{}}
	if err := s.install(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) readingsIndex() string    { return s.cfg.Prefix + "-readings" }
func (s *Store) deadLettersIndex() string { return s.cfg.Prefix + "-deadletters" }

// sensorIndex is the index holding ref's readings.
func (s *Store) sensorIndex(ref store.SensorRef) string {
	if s.cfg.Mode == ModePerSensor {
		return fmt.Sprintf("%s-%d_%d", s.cfg.Prefix, ref.DeviceID, ref.SensorID)
	}
	return s.readingsIndex()
}

// searchIndex is the index expression for reading one sensor.
func (s *Store) searchIndex(sensorID int64) string {
	if s.cfg.Mode == ModePerSensor {
		return fmt.Sprintf("%s-*_%d", s.cfg.Prefix, sensorID)
	}
	return s.readingsIndex()
}

func (s *Store) allReadings() string {
	if s.cfg.Mode == ModePerSensor {
		return s.cfg.Prefix + "-*_*"
	}
	return s.readingsIndex()
}

func (s *Store) indexSettings() map[string]any {
	return map[string]any{
		"number_of_shards":   s.cfg.Shards,
		"number_of_replicas": s.cfg.Replicas,
		// ListReadings asks for limit+1 documents.
		"max_result_window": store.MaxLimit + 1,
	}
}

var readingsMappings = map[string]any{
	"dynamic": "strict",
	"properties": map[string]any{
		"sensor_id":     map[string]any{"type": "long"},
		"device_id":     map[string]any{"type": "long"},
		"ts_ns":         map[string]any{"type": "long"},
		"seq":           map[string]any{"type": "long"},
		"timestamp":     map[string]any{"type": "date_nanos"},
		"received":      map[string]any{"type": "date_nanos"},
		"protocol":      map[string]any{"type": "keyword"},
		"kind":          map[string]any{"type": "keyword"},
		"value_double":  map[string]any{"type": "double"},
		"value_long":    map[string]any{"type": "long"},
		"value_bool":    map[string]any{"type": "boolean"},
		"value_keyword": map[string]any{"type": "keyword", "ignore_above": 8191},
		"value_object":  map[string]any{"type": "flat_object"},
		"value_num":     map[string]any{"type": "double"},
	},
}

func (s *Store) install(ctx context.Context) error {
	tmpl := map[string]any{
		"index_patterns": []string{s.readingsIndex() + "*"},
		"priority":       100,
		"template":       map[string]any{"settings": s.indexSettings(), "mappings": readingsMappings},
	}
	if _, err := s.do(ctx, http.MethodPut, "/_index_template/"+s.cfg.Prefix+"-readings", tmpl, nil); err != nil {
		return fmt.Errorf("install index template: %w", err)
	}
	dl := map[string]any{
		"settings": map[string]any{"number_of_shards": 1, "number_of_replicas": s.cfg.Replicas},
		"mappings": map[string]any{"properties": map[string]any{
			"dl_id": map[string]any{"type": "keyword"}, "device_id": map[string]any{"type": "long"},
			"sensor_id": map[string]any{"type": "long"}, "protocol": map[string]any{"type": "keyword"},
			"reason": map[string]any{"type": "text"}, "payload": map[string]any{"type": "binary"},
			"time_ns": map[string]any{"type": "long"},
		}},
	}
	if err := s.createIndex(ctx, s.deadLettersIndex(), dl); err != nil {
		return err
	}
	if s.cfg.Mode == ModeShared {
		if err := s.createIndex(ctx, s.readingsIndex(), map[string]any{}); err != nil {
			return err
		}
	}
	// Indices created before readings had a seq get the field (strict
	// mappings refuse unknown fields); adding a field is always allowed.
	if _, err := s.do(ctx, http.MethodPut, "/"+s.allReadings()+"/_mapping?allow_no_indices=true&ignore_unavailable=true",
		map[string]any{"properties": map[string]any{"seq": map[string]any{"type": "long"}}}, nil); err != nil {
		return fmt.Errorf("add seq to readings mappings: %w", err)
	}
	return nil
}

// createIndex creates an index unless it exists.
func (s *Store) createIndex(ctx context.Context, name string, body any) error {
	status, err := s.do(ctx, http.MethodPut, "/"+name, body, nil)
	if err != nil && status != http.StatusBadRequest {
		return fmt.Errorf("create index %s: %w", name, err)
	}
	if err != nil && !strings.Contains(err.Error(), "resource_already_exists_exception") {
		return fmt.Errorf("create index %s: %w", name, err)
	}
	return nil
}

// CreateSensor creates the per-sensor index (no-op in shared mode).
func (s *Store) CreateSensor(ctx context.Context, ref store.SensorRef) error {
	if s.cfg.Mode != ModePerSensor {
		return nil
	}
	return s.ensureIndex(ctx, s.sensorIndex(ref))
}

// DropSensor deletes the per-sensor index, or the sensor's documents in
// shared mode.
func (s *Store) DropSensor(ctx context.Context, ref store.SensorRef) error {
	if s.cfg.Mode != ModePerSensor {
		return s.DeleteSensor(ctx, ref.SensorID)
	}
	name := s.sensorIndex(ref)
	status, err := s.do(ctx, http.MethodDelete, "/"+name, nil, nil)
	if err != nil && status != http.StatusNotFound {
		return fmt.Errorf("delete index %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.indices, name)
	s.mu.Unlock()
	return nil
}

func (s *Store) ensureIndex(ctx context.Context, name string) error {
	s.mu.Lock()
	known := s.indices[name]
	s.mu.Unlock()
	if known {
		return nil
	}
	if err := s.createIndex(ctx, name, map[string]any{"settings": s.indexSettings(), "mappings": readingsMappings}); err != nil {
		return err
	}
	s.mu.Lock()
	s.indices[name] = true
	s.mu.Unlock()
	return nil
}

// Feed returns the live feed of readings written by this process.
func (s *Store) Feed() *store.Feed { return s.feed }

// Ping checks the cluster answers.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.do(ctx, http.MethodGet, "/_cluster/health", nil, nil)
	return err
}

// Close releases the client.
func (s *Store) Close() error { return nil }

// Refresh makes every write searchable now (tests; production relies on
// the 1 s refresh interval).
func (s *Store) Refresh(ctx context.Context) error {
	_, err := s.do(ctx, http.MethodPost, "/"+s.allReadings()+","+s.deadLettersIndex()+"/_refresh?allow_no_indices=true&ignore_unavailable=true", nil, nil)
	return err
}

// do sends a JSON request; out (may be nil) receives the JSON response.
// It returns the HTTP status and an error for non-2xx answers.
func (s *Store) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			return 0, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(buf)
	}
	raw, status, err := s.raw(ctx, method, path, "application/json", rd)
	if err != nil {
		return status, err
	}
	if status >= 300 {
		return status, fmt.Errorf("opensearch %s %s: %d %s", method, path, status, truncate(raw, 500))
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return status, fmt.Errorf("decode opensearch response: %w", err)
		}
	}
	return status, nil
}

func (s *Store) raw(ctx context.Context, method, path, ctype string, body io.Reader) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, 0, fmt.Errorf("build request: %w", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := s.c.Perform(req)
	if err != nil {
		return nil, 0, fmt.Errorf("opensearch %s %s: %w", method, path, err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, res.StatusCode, fmt.Errorf("read opensearch response: %w", err)
	}
	return raw, res.StatusCode, nil
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "..."
	}
	return string(b)
}

// doc is a reading as indexed.
type doc struct {
	SensorID     int64           `json:"sensor_id"`
	DeviceID     int64           `json:"device_id"`
	TsNS         int64           `json:"ts_ns"`
	Seq          int64           `json:"seq"`
	Timestamp    string          `json:"timestamp"`
	Received     string          `json:"received,omitempty"`
	Protocol     string          `json:"protocol,omitempty"`
	Kind         string          `json:"kind"`
	ValueDouble  *float64        `json:"value_double,omitempty"`
	ValueLong    *int64          `json:"value_long,omitempty"`
	ValueBool    *bool           `json:"value_bool,omitempty"`
	ValueKeyword *string         `json:"value_keyword,omitempty"`
	ValueObject  json.RawMessage `json:"value_object,omitempty"`
	ValueNum     *float64        `json:"value_num,omitempty"`
}

func nsTime(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func toDoc(r store.Reading) doc {
	d := doc{SensorID: r.SensorID, DeviceID: r.DeviceID, TsNS: r.TimeNS, Seq: r.Seq, Timestamp: nsTime(r.TimeNS), Protocol: r.Protocol, Kind: r.Value.Kind.String()}
	if r.ReceiveTimeNS > 0 {
		d.Received = nsTime(r.ReceiveTimeNS)
	}
	v := r.Value
	switch v.Kind {
	case store.KindDouble:
		d.ValueDouble = &v.Double
	case store.KindLong:
		d.ValueLong = &v.Long
	case store.KindBool:
		d.ValueBool = &v.Bool
	case store.KindString:
		d.ValueKeyword = &v.Str
	case store.KindObject:
		d.ValueObject = v.Object
	}
	if n, ok := v.Numeric(); ok {
		d.ValueNum = &n
	}
	return d
}

func fromDoc(d doc, recv int64) store.Reading {
	r := store.Reading{SensorID: d.SensorID, DeviceID: d.DeviceID, TimeNS: d.TsNS, Seq: d.Seq, Protocol: d.Protocol, ReceiveTimeNS: recv}
	switch d.Kind {
	case "double":
		r.Value = store.Value{Kind: store.KindDouble, Double: deref(d.ValueDouble)}
	case "long":
		r.Value = store.Value{Kind: store.KindLong, Long: deref(d.ValueLong)}
	case "boolean":
		r.Value = store.Value{Kind: store.KindBool, Bool: deref(d.ValueBool)}
	case "string":
		r.Value = store.Value{Kind: store.KindString, Str: deref(d.ValueKeyword)}
	case "object":
		r.Value = store.Value{Kind: store.KindObject, Object: []byte(d.ValueObject)}
	}
	return r
}

func deref[T any](p *T) T {
	var z T
	if p == nil {
		return z
	}
	return *p
}

// DocID is the deterministic document id of a reading: its identity
// (sensor, timestamp, seq). Seq 0 keeps the id readings had before seq
// existed, so documents written then are still replaced by their replays.
func DocID(sensorID, tsNS, seq int64) string {
	if seq == 0 {
		return fmt.Sprintf("%d_%d", sensorID, tsNS)
	}
	return fmt.Sprintf("%d_%d_%d", sensorID, tsNS, seq)
}

// Write bulk-indexes rs. Documents OpenSearch rejects as malformed (4xx)
// become dead letters; anything else transient fails the whole call so the
// batch is retried (ids make that idempotent).
func (s *Store) Write(ctx context.Context, rs []store.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range rs {
		ref := store.SensorRef{DeviceID: r.DeviceID, SensorID: r.SensorID}
		idx := s.sensorIndex(ref)
		if s.cfg.Mode == ModePerSensor {
			if err := s.ensureIndex(ctx, idx); err != nil {
				return err
			}
		}
		buf.WriteString(`{"index":{"_index":"`)
		buf.WriteString(idx) // index names are [a-z0-9_-]
		buf.WriteString(`","_id":"`)
		buf.WriteString(DocID(r.SensorID, r.TimeNS, r.Seq))
		buf.WriteString("\"}}\n")
		if err := enc.Encode(toDoc(r)); err != nil {
			return fmt.Errorf("encode reading: %w", err)
		}
	}
	var res bulkResponse
	raw, status, err := s.raw(ctx, http.MethodPost, "/_bulk", "application/x-ndjson", &buf)
	if err != nil {
		return err
	}
	if status >= 300 {
		return fmt.Errorf("opensearch bulk: %d %s", status, truncate(raw, 500))
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("decode bulk response: %w", err)
	}
	if res.Errors {
		if err := s.bulkFailures(ctx, rs, res); err != nil {
			return err
		}
	}
	s.feed.Publish(rs)
	return nil
}

type bulkResponse struct {
	Errors bool `json:"errors"`
	Items  []map[string]struct {
		Status int             `json:"status"`
		Error  json.RawMessage `json:"error"`
	} `json:"items"`
}

func (s *Store) bulkFailures(ctx context.Context, rs []store.Reading, res bulkResponse) error {
	var dls []deadletter.Letter
	for i, item := range res.Items {
		for _, it := range item {
			switch {
			case it.Status < 300:
			case it.Status >= 400 && it.Status < 500 && it.Status != http.StatusTooManyRequests && i < len(rs):
				r := rs[i]
				payload, _ := json.Marshal(toDoc(r))
				dls = append(dls, deadletter.Letter{DeviceID: r.DeviceID, SensorID: r.SensorID, Protocol: r.Protocol,
					Reason: "store_rejected: opensearch rejected the document: " + truncate(it.Error, 300), Payload: payload, TimeNS: time.Now().UnixNano()})
			default:
				return fmt.Errorf("opensearch bulk item failed (%d): %s", it.Status, truncate(it.Error, 300))
			}
		}
	}
	if len(dls) > 0 {
		s.log.Warn("opensearch rejected documents; dead-lettered", "count", len(dls), "reason", dls[0].Reason)
		return s.WriteDeadLetters(ctx, dls)
	}
	return nil
}

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
	rng := map[string]any{"gte": q.FromNS}
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
// and first/last top hits per bucket.
func (s *Store) Aggregate(ctx context.Context, q store.AggregateQuery) ([]store.Bucket, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	ivMS := q.Interval.Milliseconds()
	fromMS := floorDiv(q.FromNS, int64(time.Millisecond))
	offset := ((fromMS % ivMS) + ivMS) % ivMS
	topHit := func(dir string) map[string]any {
		return map[string]any{"top_hits": map[string]any{"size": 1, "sort": readingSort(dir), "_source": []string{"value_num"}}}
	}
	body := map[string]any{
		"size": 0,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"sensor_id": q.SensorID}},
			map[string]any{"range": map[string]any{"ts_ns": map[string]any{"gte": q.FromNS, "lt": q.ToNS}}},
		}}},
		"aggs": map[string]any{"b": map[string]any{
			"date_histogram": map[string]any{"field": "timestamp", "fixed_interval": fmt.Sprintf("%dms", ivMS), "offset": fmt.Sprintf("%dms", offset), "min_doc_count": 1},
			"aggs": map[string]any{
				"st":    map[string]any{"stats": map[string]any{"field": "value_num"}},
				"first": topHit("asc"),
				"last":  topHit("desc"),
			},
		}},
	}
	var res struct {
		Aggregations struct {
			B struct {
				Buckets []struct {
					Key      int64 `json:"key"`
					DocCount int64 `json:"doc_count"`
					St       struct {
						Min, Max, Avg *float64
						Sum           float64
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
	if err := s.search(ctx, s.searchIndex(q.SensorID), body, &res); err != nil {
		return nil, fmt.Errorf("aggregate readings: %w", err)
	}
	iv := int64(q.Interval)
	out := make([]store.Bucket, 0, len(res.Aggregations.B.Buckets))
	for _, b := range res.Aggregations.B.Buckets {
		keyNS := b.Key * int64(time.Millisecond)
		idx := floorDiv(keyNS-q.FromNS+iv/2, iv) // key is the ms-rounded bucket start
		out = append(out, store.Bucket{
			StartNS: q.FromNS + idx*iv, Count: b.DocCount,
			Avg: deref(b.St.Avg), Min: deref(b.St.Min), Max: deref(b.St.Max), Sum: b.St.Sum,
			First: hitNum(b.First.Hits.Hits), Last: hitNum(b.Last.Hits.Hits),
		})
	}
	return out, nil
}

// readingSort orders readings by their identity (ts_ns, seq); documents
// written before seq existed sort as seq 0.
func readingSort(dir string) []any {
	return []any{
		map[string]any{"ts_ns": map[string]any{"order": dir}},
		map[string]any{"seq": map[string]any{"order": dir, "missing": 0, "unmapped_type": "long"}},
	}
}

func hitNum(hs []hit) float64 {
	if len(hs) == 0 {
		return 0
	}
	var d struct {
		ValueNum *float64 `json:"value_num"`
	}
	_ = json.Unmarshal(hs[0].Source, &d)
	return deref(d.ValueNum)
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
	idx := s.readingsIndex()
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
	return out, nil
}

// DeleteSensor removes every reading of the sensor.
func (s *Store) DeleteSensor(ctx context.Context, sensorID int64) error {
	body := map[string]any{"query": map[string]any{"term": map[string]any{"sensor_id": sensorID}}}
	_, err := s.do(ctx, http.MethodPost, "/"+s.searchIndex(sensorID)+"/_delete_by_query?refresh=true&conflicts=proceed&allow_no_indices=true&ignore_unavailable=true", body, nil)
	if err != nil && strings.Contains(err.Error(), "no handler found") {
		// A node without the reindex module: delete page by page.
		err = s.deleteByPages(ctx, sensorID)
	}
	if err != nil {
		return fmt.Errorf("delete readings of sensor %d: %w", sensorID, err)
	}
	return nil
}

func (s *Store) deleteByPages(ctx context.Context, sensorID int64) error {
	for {
		body := map[string]any{
			"size": store.MaxLimit, "_source": false,
			"query": map[string]any{"term": map[string]any{"sensor_id": sensorID}},
		}
		var res struct {
			Hits struct {
				Hits []struct {
					Index string `json:"_index"`
					ID    string `json:"_id"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := s.search(ctx, s.searchIndex(sensorID), body, &res); err != nil {
			return err
		}
		if len(res.Hits.Hits) == 0 {
			return nil
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, h := range res.Hits.Hits {
			_ = enc.Encode(map[string]any{"delete": map[string]any{"_index": h.Index, "_id": h.ID}})
		}
		raw, status, err := s.raw(ctx, http.MethodPost, "/_bulk?refresh=true", "application/x-ndjson", &buf)
		if err != nil {
			return err
		}
		if status >= 300 {
			return fmt.Errorf("opensearch bulk delete: %d %s", status, truncate(raw, 500))
		}
	}
}

type dlDoc struct {
	ID       string `json:"dl_id"`
	DeviceID int64  `json:"device_id"`
	SensorID int64  `json:"sensor_id"`
	Protocol string `json:"protocol"`
	Reason   string `json:"reason"`
	Payload  []byte `json:"payload,omitempty"`
	TimeNS   int64  `json:"time_ns"`
}

// WriteDeadLetters indexes dead letters (refresh=wait_for: they are rare and
// listed right after).
func (s *Store) WriteDeadLetters(ctx context.Context, dls []deadletter.Letter) error {
	if len(dls) == 0 {
		return nil
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, d := range dls {
		id := uuid.NewString()
		_ = enc.Encode(map[string]any{"index": map[string]any{"_index": s.deadLettersIndex(), "_id": id}})
		_ = enc.Encode(dlDoc{ID: id, DeviceID: d.DeviceID, SensorID: d.SensorID, Protocol: d.Protocol, Reason: d.Reason, Payload: d.Payload, TimeNS: d.TimeNS})
	}
	raw, status, err := s.raw(ctx, http.MethodPost, "/_bulk?refresh=wait_for", "application/x-ndjson", &buf)
	if err != nil {
		return err
	}
	var res bulkResponse
	if status >= 300 || json.Unmarshal(raw, &res) != nil || res.Errors {
		return fmt.Errorf("opensearch dead-letter bulk: %d %s", status, truncate(raw, 500))
	}
	return nil
}

// ListDeadLetters returns dead letters newest first.
func (s *Store) ListDeadLetters(ctx context.Context, q store.DeadLetterQuery) ([]store.DeadLetter, string, error) {
	limit := store.ClampLimit(q.Limit, 100)
	filter := []any{}
	if q.SensorID != 0 {
		filter = append(filter, map[string]any{"term": map[string]any{"sensor_id": q.SensorID}})
	}
	if len(q.DeviceIDs) > 0 {
		filter = append(filter, map[string]any{"terms": map[string]any{"device_id": q.DeviceIDs}})
	}
	body := map[string]any{
		"size":  limit + 1,
		"query": map[string]any{"bool": map[string]any{"filter": filter}},
		"sort":  []any{map[string]any{"time_ns": "desc"}, map[string]any{"dl_id": "desc"}},
	}
	if q.PageToken != "" {
		ts, id, ok := strings.Cut(q.PageToken, ":")
		var n json.Number = json.Number(ts)
		if _, err := n.Int64(); !ok || err != nil {
			return nil, "", fmt.Errorf("%w: bad page token", store.ErrInvalid)
		}
		body["search_after"] = []any{n, id}
	}
	var res searchResponse
	if err := s.search(ctx, s.deadLettersIndex(), body, &res); err != nil {
		return nil, "", fmt.Errorf("list dead letters: %w", err)
	}
	var out []store.DeadLetter
	for _, h := range res.Hits.Hits {
		var d dlDoc
		if err := json.Unmarshal(h.Source, &d); err != nil {
			return nil, "", fmt.Errorf("decode dead letter: %w", err)
		}
		out = append(out, store.DeadLetter{ID: d.ID, Letter: deadletter.Letter{DeviceID: d.DeviceID, SensorID: d.SensorID, Protocol: d.Protocol, Reason: d.Reason, Payload: d.Payload, TimeNS: d.TimeNS}})
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		last := out[limit-1]
		next = fmt.Sprintf("%d:%s", last.TimeNS, last.ID)
	}
	return out, next, nil
}

// searchKeys are the top-level search body keys the proxy passes on.
var searchKeys = map[string]bool{
	"query": true, "size": true, "from": true, "sort": true, "aggs": true, "aggregations": true,
	"_source": true, "track_total_hits": true, "search_after": true, "post_filter": true,
	"highlight": true, "fields": true, "docvalue_fields": true, "timeout": true,
	"terminate_after": true, "min_score": true,
}

// forbiddenKeys may not appear anywhere in a consumer's body, because they
// read documents outside the query (and so outside the sensor filter):
//   - global ignores the query; significant_terms/significant_text and
//     background_filter compare against the whole index;
//   - index/_index/indices name other indices (terms, geo_shape lookups);
//     more_like_this and percolate fetch other documents;
//   - wrapper hides a query from this check (base64);
//   - scripts run code on the cluster.
var forbiddenKeys = map[string]bool{
	"global": true, "significant_terms": true, "significant_text": true, "background_filter": true,
	"_index": true, "index": true, "indices": true, "more_like_this": true, "percolate": true,
	"wrapper": true, "script": true, "scripted_metric": true, "script_score": true, "script_fields": true,
}

// emptyBucketAggs may ask for empty buckets (min_doc_count 0): their buckets
// are ranges, not terms read from other documents.
var emptyBucketAggs = map[string]bool{"date_histogram": true, "histogram": true, "auto_date_histogram": true}

// Search runs body restricted to the sensor's readings: the sensor filter is
// added around the caller's query, and constructs that could read other
// documents or indices are refused.
func (s *Store) Search(ctx context.Context, ref store.SensorRef, body []byte) ([]byte, int, error) {
	buf, err := ScopeSearch(ref.SensorID, body)
	if err != nil {
		return nil, 0, err
	}
	raw, status, err := s.raw(ctx, http.MethodPost, "/"+s.sensorIndex(ref)+"/_search?allow_no_indices=true&ignore_unavailable=true", "application/json", bytes.NewReader(buf))
	if err != nil {
		return nil, 0, err
	}
	return hideIndexNames(raw, s.sensorIndex(ref), s.readingsIndex()), status, nil
}

// hideIndexNames removes the internal index names from a search answer
// (hit "_index" fields, and the names inside error reasons), so consumers
// learn nothing about the deployment's layout.
func hideIndexNames(raw []byte, names ...string) []byte {
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if dec.Decode(&v) != nil {
		return raw
	}
	var walk func(any) any
	walk = func(x any) any {
		switch t := x.(type) {
		case map[string]any:
			delete(t, "_index")
			for k, e := range t {
				t[k] = walk(e)
			}
		case []any:
			for i, e := range t {
				t[i] = walk(e)
			}
		case string:
			for _, n := range names {
				t = strings.ReplaceAll(t, n, "readings")
			}
			return t
		}
		return x
	}
	out, err := json.Marshal(walk(v))
	if err != nil {
		return raw
	}
	return out
}

// ScopeSearch validates a consumer's search body and returns it wrapped in
// a filter on sensorID; errors wrap store.ErrForbiddenQuery.
func ScopeSearch(sensorID int64, body []byte) ([]byte, error) {
	var in map[string]any
	if len(bytes.TrimSpace(body)) == 0 {
		in = map[string]any{}
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&in); err != nil {
			return nil, fmt.Errorf("%w: body is not a JSON object: %v", store.ErrForbiddenQuery, err)
		}
	}
	out := map[string]any{}
	for k, v := range in {
		if !searchKeys[k] {
			return nil, fmt.Errorf("%w: top-level key %q is not supported", store.ErrForbiddenQuery, k)
		}
		if err := checkScope(v, k, 1); err != nil {
			return nil, err
		}
		out[k] = v
	}
	must := []any{}
	if q, ok := in["query"]; ok {
		must = append(must, q)
	}
	out["query"] = map[string]any{"bool": map[string]any{
		"filter": []any{map[string]any{"term": map[string]any{"sensor_id": sensorID}}},
		"must":   must,
	}}
	buf, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode search: %w", err)
	}
	return buf, nil
}

// checkScope walks v (found under key parent) for forbidden constructs.
// maxQueryDepth bounds how deeply a consumer query may nest objects and
// arrays (OpenSearch itself fails far deeper queries with a server error).
const maxQueryDepth = 32

func checkScope(v any, parent string, depth int) error {
	if depth > maxQueryDepth {
		return fmt.Errorf("%w: the query nests deeper than %d levels", store.ErrForbiddenQuery, maxQueryDepth)
	}
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if forbiddenKeys[k] {
				return fmt.Errorf("%w: %q may not appear in a consumer query", store.ErrForbiddenQuery, k)
			}
			if k == "min_doc_count" && !emptyBucketAggs[parent] {
				// Numbers and numeric strings alike (OpenSearch coerces both).
				if f, err := strconv.ParseFloat(fmt.Sprint(e), 64); err != nil || f < 1 {
					return fmt.Errorf("%w: min_doc_count below 1 is only allowed on histograms", store.ErrForbiddenQuery)
				}
			}
			if err := checkScope(e, k, depth+1); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range x {
			if err := checkScope(e, parent, depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}

var (
	_ store.Store    = (*Store)(nil)
	_ store.Searcher = (*Store)(nil)
)
