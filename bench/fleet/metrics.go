package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// metrics is one scrape of the server's /metrics: every sample by its name
// with labels (`iot_wal_group_records_bucket{le="4"}`).
type metrics map[string]float64

// scrape reads the server's Prometheus metrics (nil when it cannot).
func (p *platform) scrape() metrics {
	req, err := http.NewRequest(http.MethodGet, p.api+"/metrics", nil)
	if err != nil {
		return nil
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := p.hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil
	}
	return parseMetrics(resp.Body)
}

// parseMetrics reads the Prometheus text format (comments skipped).
func parseMetrics(r io.Reader) metrics {
	m := metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i <= 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		m[l[:i]] = v
	}
	return m
}

// quantile estimates the q quantile of histogram name over the window
// between scrapes a and b (the upper bound of the bucket holding it, the
// way histogram_quantile does without interpolation); NaN when empty.
func quantile(a, b metrics, name string, q float64) float64 {
	type bucket struct{ le, n float64 }
	var bs []bucket
	prefix := name + `_bucket{le="`
	for k, v := range b {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		le, err := strconv.ParseFloat(strings.TrimSuffix(k[len(prefix):], `"}`), 64)
		if err != nil {
			continue
		}
		bs = append(bs, bucket{le, v - a[k]})
	}
	slices.SortFunc(bs, func(x, y bucket) int {
		switch {
		case x.le < y.le:
			return -1
		case x.le > y.le:
			return 1
		}
		return 0
	})
	if len(bs) == 0 || bs[len(bs)-1].n <= 0 {
		return math.NaN()
	}
	rank := q * bs[len(bs)-1].n
	for _, bk := range bs {
		if bk.n >= rank {
			return bk.le
		}
	}
	return math.Inf(1)
}

// summary describes the server between two scrapes of the measured window:
// memory by kind at the second, and the write-ahead log's groups (one fsync
// each) and apply batches (one store transaction each).
func summary(a, b metrics) string {
	if a == nil || b == nil {
		return "server metrics: not available"
	}
	mib := func(k string) float64 { return b[k] / (1 << 20) }
	per := func(name string) (count, mean float64) {
		n := b[name+"_count"] - a[name+"_count"]
		if n <= 0 {
			return 0, 0
		}
		return n, (b[name+"_sum"] - a[name+"_sum"]) / n
	}
	fsyncMax := quantile(a, b, "iot_wal_fsync_seconds", 1)
	groups, groupMean := per("iot_wal_group_records")
	applies, applyMean := per("iot_wal_apply_records")
	return fmt.Sprintf("server metrics: stacks %.1f MiB, heap in use %.1f MiB (heap from the OS %.1f, released %.1f; Go total %.1f), %.0f goroutines; "+
		"between scrapes: %.0f log groups (%.1f records each), %.0f store applies (%.1f records each), ack → applied p99 ≤ %.1f ms, "+
		"log fsync p99 ≤ %.1f ms, max ≤ %.1f ms; GC pause max %.1f ms",
		mib("go_memstats_stack_inuse_bytes"), mib("go_memstats_heap_inuse_bytes"), mib("go_memstats_heap_sys_bytes"),
		mib("go_memstats_heap_released_bytes"), mib("go_memstats_sys_bytes"), b["go_goroutines"],
		groups, groupMean, applies, applyMean, quantile(a, b, "iot_wal_ack_to_applied_seconds", 0.99)*1000,
		quantile(a, b, "iot_wal_fsync_seconds", 0.99)*1000, fsyncMax*1000, b[`go_gc_duration_seconds{quantile="1"}`]*1000)
}
