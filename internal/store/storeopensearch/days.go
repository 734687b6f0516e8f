package storeopensearch

// This file holds dropping expired day indices (shared mode).

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// dayIndices lists the shared-mode day indices with the end of their day,
// oldest first.
func (s *Store) dayIndices(ctx context.Context) ([]string, map[string]int64, error) {
	var res []struct {
		Index string `json:"index"`
	}
	if _, err := s.do(ctx, http.MethodGet, "/_cat/indices/"+s.readingsIndex()+"-*?format=json&h=index&expand_wildcards=open", nil, &res); err != nil {
		return nil, nil, fmt.Errorf("list day indices: %w", err)
	}
	ends := map[string]int64{}
	var names []string
	for _, r := range res {
		day, ok := strings.CutPrefix(r.Index, s.readingsIndex()+"-")
		if !ok || len(day) != len(dayLayout) {
			continue
		}
		t, err := time.Parse(dayLayout, day)
		if err != nil {
			continue // not a day index (another deployment's prefix, say)
		}
		ends[r.Index] = t.Add(24 * time.Hour).UnixNano()
		names = append(names, r.Index)
	}
	slices.Sort(names) // YYYYMMDD sorts by day
	return names, ends, nil
}

// dropExpiredDays drops every day index that ended in the past and whose
// every sensor has its horizon at or after the end of the day and no
// reading in it written since the horizon moved: all of its readings are
// expired, summarised into the rollups and hidden from reads. A day kept by a sensor remembers that sensor, so the next call
// looks at its horizon alone before listing the day's sensors again.
func (s *Store) dropExpiredDays(ctx context.Context) error {
	names, ends, err := s.dayIndices(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UnixNano()
	var past []string
	for _, name := range names {
		if ends[name] <= now { // today (and later) is being written
			past = append(past, name)
		}
	}
	// The sensors that kept days last time, all in one request.
	s.mu.Lock()
	keepers := map[string]int64{}
	var ids []int64
	for _, name := range past {
		if k, ok := s.dayKeeper[name]; ok {
			keepers[name] = k
			ids = append(ids, k)
		}
	}
	s.mu.Unlock()
	horizons, err := s.horizonsOf(ctx, ids)
	if err != nil {
		return err
	}
	blocked, err := s.blockedDays(ctx)
	if err != nil {
		return err
	}
	for _, name := range past {
		end := ends[name]
		if k, ok := keepers[name]; ok && horizons[k].Raw < end {
			if err := s.liftStaleBlock(ctx, name, blocked); err != nil {
				return err
			}
			continue // still kept by the same sensor
		}
		keeper, err := s.dayKeeperOf(ctx, name, end)
		if err != nil {
			return err
		}
		if keeper != 0 {
			s.keepDay(name, keeper)
			if err := s.liftStaleBlock(ctx, name, blocked); err != nil {
				return err
			}
			continue
		}
		if err := s.dropDay(ctx, name, end); err != nil {
			return err
		}
	}
	return nil
}

// blockedDays returns the day indices whose writes are blocked: by a drop in
// progress, or left blocked by a process that died between blocking and
// dropping (or unblocking) the day.
func (s *Store) blockedDays(ctx context.Context) (map[string]bool, error) {
	var res map[string]struct {
		Settings struct {
			Index struct {
				Blocks struct {
					Write string `json:"write"`
				} `json:"blocks"`
			} `json:"index"`
		} `json:"settings"`
	}
	if _, err := s.do(ctx, http.MethodGet, "/"+s.readingsIndex()+"-*/_settings/index.blocks.write?expand_wildcards=open&allow_no_indices=true", nil, &res); err != nil {
		return nil, fmt.Errorf("read day index blocks: %w", err)
	}
	out := map[string]bool{}
	for name, r := range res {
		if r.Settings.Index.Blocks.Write == "true" {
			out[name] = true
		}
	}
	return out, nil
}

// liftStaleBlock unblocks writes to a day index found kept (some sensor's
// readings in it are not expired) that is still blocked: a drop that
// blocked it was interrupted before it could unblock it, and late readings
// for that day would otherwise be refused (and retried) forever.
func (s *Store) liftStaleBlock(ctx context.Context, name string, blocked map[string]bool) error {
	if !blocked[name] {
		return nil
	}
	if _, err := s.do(ctx, http.MethodPut, "/"+name+"/_settings", map[string]any{"index.blocks.write": nil}, nil); err != nil {
		return fmt.Errorf("unblock writes to %s: %w", name, err)
	}
	s.log.Warn("lifted a write block an interrupted retention pass left on a kept day index", "index", name)
	return nil
}

func (s *Store) keepDay(name string, keeper int64) {
	s.mu.Lock()
	s.dayKeeper[name] = keeper
	s.mu.Unlock()
}

// dropDay drops a day index found droppable, safely against a write
// racing the check: it blocks writes to the index (a blocked bulk item is
// a transient failure the writer retries), refreshes it, checks its
// sensors again and only then deletes it; if a sensor keeps it after all,
// the block is lifted.
func (s *Store) dropDay(ctx context.Context, name string, end int64) error {
	block := func(on bool) error {
		v := any(nil)
		if on {
			v = true
		}
		_, err := s.do(ctx, http.MethodPut, "/"+name+"/_settings", map[string]any{"index.blocks.write": v}, nil)
		return err
	}
	if err := block(true); err != nil {
		return fmt.Errorf("block writes to %s: %w", name, err)
	}
	keeper, err := func() (int64, error) {
		if _, err := s.do(ctx, http.MethodPost, "/"+name+"/_refresh", nil, nil); err != nil {
			return 0, err
		}
		return s.dayKeeperOf(ctx, name, end)
	}()
	if err != nil || keeper != 0 {
		if uerr := block(false); uerr != nil {
			return fmt.Errorf("unblock writes to %s: %w", name, uerr)
		}
		if keeper != 0 {
			s.keepDay(name, keeper)
		}
		return err
	}
	status, err := s.do(ctx, http.MethodDelete, "/"+name, nil, nil)
	if err != nil && status != http.StatusNotFound {
		return fmt.Errorf("drop expired day index %s: %w", name, err)
	}
	s.mu.Lock()
	delete(s.dayKeeper, name)
	delete(s.indices, name)
	s.mu.Unlock()
	s.log.Info("dropped expired day index", "index", name)
	return nil
}

// dayKeeperOf returns a sensor with readings in the day index that are
// not summarised yet: its horizon is before end, or some of its readings
// there were written since its horizon moved (0: none, the whole day is
// summarised).
func (s *Store) dayKeeperOf(ctx context.Context, name string, end int64) (int64, error) {
	for after := int64(0); ; {
		written, ids, err := s.sensorsWrittenIn(ctx, name, after, 1000)
		if err != nil || len(ids) == 0 {
			return 0, err
		}
		hs, err := s.horizonsOf(ctx, ids)
		if err != nil {
			return 0, err
		}
		for _, id := range ids {
			// The max aggregation answers a double (a written_ns is
			// rounded by up to 128 ns): a day is kept when in doubt.
			if h := hs[id]; h.Raw < end {
				return id, nil
			} else if w, ok := written[id]; ok && w+1024 >= h.Written {
				return id, nil
			}
		}
		after = ids[len(ids)-1]
	}
}

// sensorsWrittenIn lists up to n sensor ids greater than after (0: from
// the first) with readings in index, in id order, and the last written_ns
// of each there (absent: all written before written_ns existed).
func (s *Store) sensorsWrittenIn(ctx context.Context, index string, after int64, n int) (map[int64]int64, []int64, error) {
	comp := map[string]any{"size": n, "sources": []any{map[string]any{"id": map[string]any{"terms": map[string]any{"field": "sensor_id"}}}}}
	if after > 0 {
		comp["after"] = map[string]any{"id": after}
	}
	var res struct {
		Aggregations struct {
			S struct {
				Buckets []struct {
					Key struct{ ID int64 } `json:"key"`
					W   struct {
						Value *float64 `json:"value"`
					} `json:"w"`
				} `json:"buckets"`
			} `json:"s"`
		} `json:"aggregations"`
	}
	body := map[string]any{"size": 0, "aggs": map[string]any{"s": map[string]any{"composite": comp,
		"aggs": map[string]any{"w": map[string]any{"max": map[string]any{"field": "written_ns"}}}}}}
	if err := s.search(ctx, index, body, &res); err != nil {
		return nil, nil, fmt.Errorf("list sensors of %s: %w", index, err)
	}
	written := map[int64]int64{}
	ids := make([]int64, len(res.Aggregations.S.Buckets))
	for i, b := range res.Aggregations.S.Buckets {
		ids[i] = b.Key.ID
		if b.W.Value != nil {
			written[b.Key.ID] = int64(*b.W.Value)
		}
	}
	return written, ids, nil
}
