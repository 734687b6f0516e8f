package storeopensearch

// This file holds the document shape and bulk indexing.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/store"
)

// doc is a reading as indexed.
type doc struct {
	SensorID     int64           `json:"sensor_id"`
	DeviceID     int64           `json:"device_id"`
	TsNS         int64           `json:"ts_ns"`
	Seq          int64           `json:"seq"`
	WrittenNS    int64           `json:"written_ns,omitempty"`
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
	lastDay := ""
	// Every document of the request carries when it was written (each
	// retry of the batch writes it again, with a new stamp): retention
	// summarises a reading only once it was written longer ago than the
	// settle time, so a reading written behind its sensor's horizon while
	// a retention step runs is summarised by a later step, never skipped.
	written := time.Now().UnixNano()
	for _, r := range rs {
		ref := store.SensorRef{DeviceID: r.DeviceID, SensorID: r.SensorID}
		var idx string
		if s.cfg.Mode == ModePerSensor {
			idx = s.sensorIndex(ref)
			if err := s.ensureIndex(ctx, idx); err != nil {
				return err
			}
		} else {
			// The reading's UTC day: a replay lands on the same _id in the
			// same index. The index is created (and its shard started)
			// before the bulk, so no search meets a half-created index.
			idx = s.dayIndex(r.TimeNS)
			if idx != lastDay {
				if err := s.ensureIndex(ctx, idx); err != nil {
					return err
				}
				lastDay = idx
			}
		}
		buf.WriteString(`{"index":{"_index":"`)
		buf.WriteString(idx) // index names are [a-z0-9_-]
		buf.WriteString(`","_id":"`)
		buf.WriteString(DocID(r.SensorID, r.TimeNS, r.Seq))
		buf.WriteString("\"}}\n")
		d := toDoc(r)
		d.WrittenNS = written
		if err := enc.Encode(d); err != nil {
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
			case it.Status == http.StatusForbidden && bytes.Contains(it.Error, []byte("cluster_block_exception")):
				// Retention blocked writes to a day index it is about to
				// drop: transient, the batch is retried (into a new index
				// if the day was dropped).
				return fmt.Errorf("opensearch bulk item refused by a write block (%d): %s", it.Status, truncate(it.Error, 300))
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
