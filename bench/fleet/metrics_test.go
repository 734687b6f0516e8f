package main

import (
	"math"
	"strings"
	"testing"
)

func TestParseMetricsAndQuantile(t *testing.T) {
	a := parseMetrics(strings.NewReader(`# HELP x
h_bucket{le="0.001"} 10
h_bucket{le="0.01"} 10
h_bucket{le="0.1"} 10
h_bucket{le="+Inf"} 10
h_count 10
h_sum 0.005
go_goroutines 7
`))
	b := parseMetrics(strings.NewReader(`h_bucket{le="0.001"} 60
h_bucket{le="0.01"} 108
h_bucket{le="0.1"} 110
h_bucket{le="+Inf"} 110
h_count 110
h_sum 0.5
go_goroutines 9
`))
	if a["go_goroutines"] != 7 || b["h_count"] != 110 {
		t.Fatalf("parsed %v / %v", a, b)
	}
	// 100 observations in the window: 50 ≤ 1 ms, 48 in (1, 10] ms, 2 in (10, 100] ms.
	if q := quantile(a, b, "h", 0.5); q != 0.001 {
		t.Errorf("p50 = %v, want 0.001", q)
	}
	if q := quantile(a, b, "h", 0.98); q != 0.01 {
		t.Errorf("p98 = %v, want 0.01", q)
	}
	if q := quantile(a, b, "h", 0.99); q != 0.1 {
		t.Errorf("p99 = %v, want 0.1", q)
	}
	if q := quantile(a, b, "h", 1); q != 0.1 {
		t.Errorf("max = %v, want 0.1 (the highest bucket with an observation)", q)
	}
	if q := quantile(b, b, "h", 0.99); !math.IsNaN(q) {
		t.Errorf("empty window p99 = %v, want NaN", q)
	}
	if s := summary(nil, b); !strings.Contains(s, "not available") {
		t.Errorf("summary without metrics: %q", s)
	}
}
