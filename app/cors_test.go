package app

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestCORS(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) })
	h := withCORS([]string{"https://app.example"}, ok)
	tests := []struct {
		name, method, origin, reqMethod string
		status                          int
		allow                           string
	}{
		{"preflight from an allowed origin", "OPTIONS", "https://app.example", "POST", 204, "https://app.example"},
		{"call from an allowed origin", "POST", "https://app.example", "", 200, "https://app.example"},
		{"call from another origin", "POST", "https://evil.example", "", 200, ""},
		{"same-origin call", "GET", "", "", 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, "/iot.query.v1.QueryService/Subscribe", nil)
			if tc.origin != "" {
				r.Header.Set("Origin", tc.origin)
			}
			if tc.reqMethod != "" {
				r.Header.Set("Access-Control-Request-Method", tc.reqMethod)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tc.status || w.Header().Get("Access-Control-Allow-Origin") != tc.allow {
				t.Fatalf("status %d allow %q", w.Code, w.Header().Get("Access-Control-Allow-Origin"))
			}
		})
	}
	if withCORS(nil, ok) == nil {
		t.Fatal("nil handler")
	}
}
