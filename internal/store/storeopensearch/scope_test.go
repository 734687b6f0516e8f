package storeopensearch

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/iotplatform/iotplatform/internal/store"
)

// TestScopeSearch_RefusesWaysOutOfTheSensor lists bodies that could read
// other sensors' documents or other indices (found in review) and bodies a
// consumer legitimately sends.
func TestScopeSearch_RefusesWaysOutOfTheSensor(t *testing.T) {
	refused := map[string]string{
		"global aggregation":         `{"aggs":{"all":{"global":{},"aggs":{"n":{"value_count":{"field":"ts_ns"}}}}}}`,
		"significant_terms":          `{"size":0,"aggs":{"x":{"significant_terms":{"field":"sensor_id"}}}}`,
		"background_filter":          `{"aggs":{"x":{"significant_terms":{"field":"sensor_id","background_filter":{"term":{"sensor_id":99}}}}}}`,
		"significant_text":           `{"aggs":{"x":{"significant_text":{"field":"value_keyword"}}}}`,
		"terms min_doc_count 0":      `{"aggs":{"x":{"terms":{"field":"value_keyword","min_doc_count":0}}}}`,
		"terms min_doc_count \"0\"":  `{"aggs":{"x":{"terms":{"field":"sensor_id","min_doc_count":"0"}}}}`,
		"terms lookup":               `{"query":{"terms":{"sensor_id":{"index":"iot-deadletters","id":"1","path":"sensor_id"}}}}`,
		"wrapper":                    `{"query":{"wrapper":{"query":"eyJtYXRjaF9hbGwiOnt9fQ=="}}}`,
		"more_like_this":             `{"query":{"more_like_this":{"like":[{"_id":"99_1"}]}}}`,
		"percolate":                  `{"query":{"percolate":{"field":"q","index":"other","id":"1"}}}`,
		"script query":               `{"query":{"bool":{"filter":{"script":{"script":"true"}}}}}`,
		"script_fields":              `{"script_fields":{"x":{"script":"1"}}}`,
		"top-level index":            `{"index":"other"}`,
		"suggest (not allowed)":      `{"suggest":{"x":{"text":"a","term":{"field":"value_keyword"}}}}`,
		"_index in a query":          `{"query":{"term":{"_index":"other"}}}`,
		"not an object":              `[1,2]`,
		"nested wrapper in a should": `{"query":{"bool":{"should":[{"match_all":{}},{"wrapper":{"query":"e30="}}]}}}`,
	}
	for name, body := range refused {
		t.Run("refuses "+name, func(t *testing.T) {
			if _, err := ScopeSearch(5, []byte(body)); !errors.Is(err, store.ErrForbiddenQuery) {
				t.Fatalf("accepted: %s (err %v)", body, err)
			}
		})
	}
	allowed := []string{
		``,
		`{"query":{"range":{"value_double":{"gte":20}}},"size":5,"sort":[{"timestamp":"desc"}]}`,
		`{"size":0,"aggs":{"h":{"date_histogram":{"field":"timestamp","fixed_interval":"1m","min_doc_count":0},"aggs":{"a":{"avg":{"field":"value_double"}}}}}}`,
		`{"aggs":{"t":{"terms":{"field":"value_keyword","min_doc_count":2}}}}`,
		`{"query":{"bool":{"should":[{"term":{"sensor_id":99}}]}}}`,
	}
	for _, body := range allowed {
		out, err := ScopeSearch(5, []byte(body))
		if err != nil {
			t.Fatalf("refused a legitimate body %s: %v", body, err)
		}
		// Whatever the caller asked, the sensor filter is outside it.
		var q struct {
			Query struct {
				Bool struct {
					Filter []map[string]map[string]json.Number `json:"filter"`
				} `json:"bool"`
			} `json:"query"`
		}
		if err := json.Unmarshal(out, &q); err != nil || len(q.Query.Bool.Filter) != 1 || q.Query.Bool.Filter[0]["term"]["sensor_id"].String() != "5" {
			t.Fatalf("sensor filter missing in %s", out)
		}
		if body != "" && !strings.Contains(string(out), `"must"`) {
			t.Fatalf("caller's query lost: %s", out)
		}
	}
}
