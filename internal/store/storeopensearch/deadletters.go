package storeopensearch

// This file holds the dead-letter index.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/uuid"

	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/store"
)

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
		if d.Key != "" {
			id = d.Key // a letter written again is the same document
		}
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
