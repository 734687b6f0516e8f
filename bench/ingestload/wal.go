package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// scrape returns the samples of the named metric family on a /metrics page
// (name{labels} -> value).
func scrape(url, family string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, family) {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// backlog is the write-ahead log's unapplied record count (0 when the
// binary runs another bus).
func backlog(metrics string) float64 {
	return scrape(metrics, "iot_wal_backlog_records")["iot_wal_backlog_records"]
}

// histQuantile returns quantile q of the difference of two scrapes of a
// histogram (upper bound of the bucket holding it) and the sample count.
func histQuantile(before, after map[string]float64, family string, q float64) (float64, float64) {
	type bk struct{ le, n float64 }
	var bs []bk
	for k, v := range after {
		if !strings.HasPrefix(k, family+"_bucket{le=\"") {
			continue
		}
		le := strings.TrimSuffix(strings.TrimPrefix(k, family+"_bucket{le=\""), "\"}")
		f := math.Inf(1)
		if le != "+Inf" {
			f, _ = strconv.ParseFloat(le, 64)
		}
		bs = append(bs, bk{f, v - before[k]})
	}
	for i := range bs { // sort by le
		for j := i + 1; j < len(bs); j++ {
			if bs[j].le < bs[i].le {
				bs[i], bs[j] = bs[j], bs[i]
			}
		}
	}
	if len(bs) == 0 || bs[len(bs)-1].n == 0 {
		return 0, 0
	}
	total := bs[len(bs)-1].n
	for _, b := range bs {
		if b.n >= q*total {
			return b.le, total
		}
	}
	return math.Inf(1), total
}

// batchesStored pushes 1000-reading batches with fresh timestamps for *dur
// and reports the ack rate and the stored rate: acked readings over the time
// until the log's backlog is applied (ack -> stored).
func batchesStored(gw, metrics, tok, sensor string) {
	var seq atomic.Int64
	base := time.Now().Add(-24 * time.Hour).UnixMilli()
	bodies := sync.Pool{New: func() any { return new(bytes.Buffer) }}
	c := min(*conns, 8)
	tr := &http.Transport{MaxIdleConnsPerHost: c, MaxConnsPerHost: c}
	cl := &http.Client{Transport: tr}
	var acked atomic.Int64
	start := time.Now()
	r := closedLoop(c, func() error {
		b := bodies.Get().(*bytes.Buffer)
		defer bodies.Put(b)
		b.Reset()
		b.WriteByte('[')
		first := seq.Add(1000) - 1000
		for i := int64(0); i < 1000; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(b, `{"sensor_id":%s,"timestamp":%d,"value":%d.5}`, sensor, base+first+i, i)
		}
		b.WriteByte(']')
		req, _ := http.NewRequest(http.MethodPost, gw, bytes.NewReader(b.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("authorization", "Bearer "+tok)
		resp, err := cl.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		acked.Add(1000)
		return nil
	})
	ackEnd := time.Since(start)
	for backlog(metrics) > 0 && time.Since(start) < *dur+60*time.Second {
		time.Sleep(5 * time.Millisecond)
	}
	all := time.Since(start)
	fmt.Printf("iotplatform HTTP batches of 1000: acked %.0f readings/s (p50 %v p99 %v, %d refused); ack -> stored: %d readings in %.2fs => %.0f readings/s\n",
		float64(acked.Load())/ackEnd.Seconds(), r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.errs, acked.Load(), all.Seconds(), float64(acked.Load())/all.Seconds())
}

// lagAt pushes single readings open-loop at rate req/s for *dur and reports
// the ack -> applied (visible) lag from the log's histogram.
func lagAt(gw, metrics, tok string, body []byte, rate float64) {
	before := scrape(metrics, "iot_wal_ack_to_applied_seconds")
	workers := 64
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	cl := &http.Client{Transport: tr}
	interval := time.Duration(float64(workers) / rate * float64(time.Second))
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(*dur)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := time.Now().Add(time.Duration(w) * interval / time.Duration(workers))
			for next.Before(end) {
				time.Sleep(time.Until(next))
				next = next.Add(interval)
				req, _ := http.NewRequest(http.MethodPost, gw, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("authorization", "Bearer "+tok)
				resp, err := cl.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 200 && backlog(metrics) > 0; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	after := scrape(metrics, "iot_wal_ack_to_applied_seconds")
	p50, n := histQuantile(before, after, "iot_wal_ack_to_applied_seconds", 0.5)
	p99, _ := histQuantile(before, after, "iot_wal_ack_to_applied_seconds", 0.99)
	fmt.Printf("ack -> visible at %.0f req/s offered (%.0f req/s acked, %d failed): p50 <= %.1f ms, p99 <= %.1f ms (%.0f publish groups, bucket upper bounds)\n",
		rate, float64(sent.Load())/dur.Seconds(), failed.Load(), p50*1000, p99*1000, n)
}
