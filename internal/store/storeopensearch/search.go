package storeopensearch

// This file holds the consumer search proxy and its scope check.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/iotplatform/iotplatform/internal/store"
)

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
	// Readings before the sensor's raw horizon are expired: invisible even
	// while their day index still exists.
	horizon, err := s.rawHorizon(ctx, ref.SensorID)
	if err != nil {
		return nil, 0, err
	}
	buf, err := scopeSearch(ref.SensorID, horizon, body)
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
	return scopeSearch(sensorID, 0, body)
}

// scopeSearch is ScopeSearch that also hides readings before horizon
// (the sensor's raw retention horizon; 0: none).
func scopeSearch(sensorID, horizon int64, body []byte) ([]byte, error) {
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
	filter := []any{map[string]any{"term": map[string]any{"sensor_id": sensorID}}}
	if horizon > 0 {
		filter = append(filter, map[string]any{"range": map[string]any{"ts_ns": map[string]any{"gte": horizon}}})
	}
	out["query"] = map[string]any{"bool": map[string]any{
		"filter": filter,
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
