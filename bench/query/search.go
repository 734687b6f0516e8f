package main

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// benchSearchProxy compares the same query sent straight to OpenSearch (with
// the sensor filter) and through the platform's consumer search proxy (as
// root, on the API at api).
func benchSearchProxy(url, api, token, index string, sensor int64, iters int) {
	userQuery := `{"query":{"range":{"value_num":{"gte":1000}}},"size":10,"sort":[{"ts_ns":"desc"}],"aggs":{"m":{"avg":{"field":"value_num"}}}}`
	direct := fmt.Sprintf(`{"query":{"bool":{"filter":[{"term":{"sensor_id":%d}}],"must":[{"range":{"value_num":{"gte":1000}}}]}},"size":10,"sort":[{"ts_ns":"desc"}],"aggs":{"m":{"avg":{"field":"value_num"}}}}`, sensor)
	run := func(target, body, token string) func(int) time.Duration {
		return measure(iters, func() {
			req, _ := http.NewRequest(http.MethodPost, target, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if token != "" {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			res, err := http.DefaultClient.Do(req)
			check(err)
			res.Body.Close()
			if res.StatusCode != 200 {
				check(fmt.Errorf("search %s: %d", target, res.StatusCode))
			}
		})
	}
	d := run(url+"/"+index+"/_search", direct, "")
	p := run(fmt.Sprintf("%s/api/consumers/consume/%d/_search", api, sensor), userQuery, token)
	fmt.Printf("search: direct to OpenSearch p50 %v p95 %v; through the proxy p50 %v p95 %v; overhead ratio p50 %.2f p95 %.2f (target <= 1.2)\n",
		d(50), d(95), p(50), p(95), float64(p(50))/float64(d(50)), float64(p(95))/float64(d(95)))
}
