package storeopensearch

// This file holds the index template, the indices and a sensor's index and readings lifecycle.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/iotplatform/iotplatform/internal/store"
)

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
		"written_ns":    map[string]any{"type": "long"},
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
	// Shared mode writes day indices (<prefix>-readings-YYYYMMDD), created
	// on their first write from the template above.
	if err := s.installRollups(ctx); err != nil {
		return err
	}
	// Indices created before readings had a seq (or a written_ns) get the
	// fields (strict mappings refuse unknown fields); adding a field is
	// always allowed.
	if _, err := s.do(ctx, http.MethodPut, "/"+s.allReadings()+"/_mapping?allow_no_indices=true&ignore_unavailable=true",
		map[string]any{"properties": map[string]any{"seq": map[string]any{"type": "long"}, "written_ns": map[string]any{"type": "long"}}}, nil); err != nil {
		return fmt.Errorf("add seq and written_ns to readings mappings: %w", err)
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

// CreateSensorIndex creates the per-sensor index (no-op in shared mode).
func (s *Store) CreateSensorIndex(ctx context.Context, ref store.SensorRef) error {
	if s.cfg.Mode != ModePerSensor {
		return nil
	}
	return s.ensureIndex(ctx, s.sensorIndex(ref))
}

// DeleteSensorIndex deletes the per-sensor index, or the sensor's documents in
// shared mode.
func (s *Store) DeleteSensorIndex(ctx context.Context, ref store.SensorRef) error {
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
	return s.deleteRollups(ctx, ref.SensorID)
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

// DeleteSensor removes every reading of the sensor.
func (s *Store) DeleteSensor(ctx context.Context, sensorID int64) error {
	body := map[string]any{"query": map[string]any{"term": map[string]any{"sensor_id": sensorID}}}
	_, err := s.do(ctx, http.MethodPost, "/"+s.searchIndex(sensorID)+"/_delete_by_query?refresh=true&conflicts=proceed&allow_no_indices=true&ignore_unavailable=true", body, nil)
	if err != nil && strings.Contains(err.Error(), "no handler found") {
		// A node without the reindex module: delete page by page.
		_, err = s.deleteByPages(ctx, s.searchIndex(sensorID), body["query"])
	}
	if err != nil {
		return fmt.Errorf("delete readings of sensor %d: %w", sensorID, err)
	}
	return s.deleteRollups(ctx, sensorID)
}

// deleteByPages deletes the documents of index matching query page by page
// (search, then bulk delete); it returns how many it deleted.
func (s *Store) deleteByPages(ctx context.Context, index string, query any) (int, error) {
	n := 0
	for {
		body := map[string]any{
			"size": store.MaxLimit, "_source": false,
			"query": query,
		}
		var res struct {
			Hits struct {
				Hits []struct {
					Index string `json:"_index"`
					ID    string `json:"_id"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := s.search(ctx, index, body, &res); err != nil {
			return n, err
		}
		if len(res.Hits.Hits) == 0 {
			return n, nil
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, h := range res.Hits.Hits {
			_ = enc.Encode(map[string]any{"delete": map[string]any{"_index": h.Index, "_id": h.ID}})
		}
		raw, status, err := s.raw(ctx, http.MethodPost, "/_bulk?refresh=true", "application/x-ndjson", &buf)
		if err != nil {
			return n, err
		}
		if status >= 300 {
			return n, fmt.Errorf("opensearch bulk delete: %d %s", status, truncate(raw, 500))
		}
		n += len(res.Hits.Hits)
	}
}
