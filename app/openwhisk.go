package app

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/iotplatform/iotplatform/internal/limits"
)

// owMaxBody bounds /init and /run payloads (OpenWhisk's own limit is 5 MB).
const owMaxBody = 8 << 20

// openWhiskAction is the Apache OpenWhisk action interface in front of the
// function's handler: POST /init (accepted once; the code is this binary,
// configuration comes from the environment) and POST /run, whose web-action
// parameters (__ow_method, __ow_headers, __ow_path, __ow_query, __ow_body)
// become one HTTP request and whose answer is {statusCode, headers, body}.
type openWhiskAction struct {
	log *slog.Logger
	// proxies are the operator's trusted proxies (--trusted-proxies); the
	// invoker calling /run is trusted as well.
	proxies limits.Proxies
	next    http.Handler
	inited  atomic.Bool
}

func newOpenWhiskAction(log *slog.Logger, proxies limits.Proxies, next http.Handler) http.Handler {
	return &openWhiskAction{log: log, proxies: proxies, next: next}
}

func (o *openWhiskAction) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/init":
		io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, owMaxBody))
		if !o.inited.CompareAndSwap(false, true) {
			owError(w, http.StatusForbidden, "Cannot initialize the action more than once.")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"ok":true}`))
	case r.Method == http.MethodPost && r.URL.Path == "/run":
		o.run(w, r)
	case r.Method == http.MethodGet && (r.URL.Path == "/healthz" || r.URL.Path == "/readyz"):
		o.next.ServeHTTP(w, r)
	default:
		owError(w, http.StatusNotFound, "an OpenWhisk action answers POST /init and POST /run only")
	}
}

// owRun is the /run payload; Value holds the action parameters.
type owRun struct {
	Value map[string]json.RawMessage `json:"value"`
}

// owResult is a web action's answer.
type owResult struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers"`
	Body       string            `json:"body"`
}

func (o *openWhiskAction) run(w http.ResponseWriter, r *http.Request) {
	var in owRun
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, owMaxBody)).Decode(&in); err != nil {
		owError(w, http.StatusBadRequest, "run payload: "+err.Error())
		return
	}
	req, err := webActionRequest(r, in.Value)
	if err != nil {
		// An action error (not an HTTP answer): OpenWhisk reports it as a
		// failed activation.
		owError(w, http.StatusBadGateway, err.Error())
		return
	}
	// Every /run comes from the invoker: the web caller's address is the
	// right-most X-Forwarded-For hop OpenWhisk's edge wrote into
	// __ow_headers, so per-address throttles do not lump all callers
	// together (hops further left are the caller's own words).
	if addr, ok := o.proxies.ForwardedClient(req.Header); ok {
		req = req.WithContext(limits.WithClientAddr(req.Context(), addr))
	}
	rec := httptest.NewRecorder()
	o.next.ServeHTTP(rec, req)
	res := owResult{StatusCode: rec.Code, Headers: map[string]string{}}
	for k, v := range rec.Header() {
		res.Headers[k] = strings.Join(v, ", ")
	}
	ct := rec.Header().Get("Content-Type")
	if textual(ct) {
		res.Body = rec.Body.String()
	} else {
		// OpenWhisk decodes a base64 body when Content-Type is binary.
		res.Body = base64.StdEncoding.EncodeToString(rec.Body.Bytes())
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// webActionRequest maps web-action parameters to an HTTP request. A raw
// action (web-custom-options / raw-http) sends __ow_body (base64 unless the
// content is plain text) and __ow_query; otherwise the remaining parameters
// are the JSON body (POST, PUT, PATCH) or the query (other methods).
func webActionRequest(parent *http.Request, v map[string]json.RawMessage) (*http.Request, error) {
	var method, path, query, body string
	headers := map[string]string{}
	for k, dst := range map[string]any{"__ow_method": &method, "__ow_path": &path, "__ow_query": &query, "__ow_headers": &headers} {
		if raw, ok := v[k]; ok {
			if err := json.Unmarshal(raw, dst); err != nil {
				return nil, fmt.Errorf("parameter %s: %v", k, err)
			}
		}
	}
	if method == "" {
		return nil, fmt.Errorf("parameter __ow_method missing: deploy this action as a web action (web-export: true)")
	}
	method = strings.ToUpper(method)
	if path == "" {
		path = "/"
	} else if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	ct := headers["content-type"]
	var payload []byte
	if raw, ok := v["__ow_body"]; ok {
		if err := json.Unmarshal(raw, &body); err != nil {
			return nil, fmt.Errorf("parameter __ow_body: %v", err)
		}
		payload = []byte(body)
		if !plainText(ct) {
			if b, err := base64.StdEncoding.DecodeString(body); err == nil {
				payload = b
			}
		}
	} else {
		params := map[string]json.RawMessage{}
		for k, p := range v {
			if !strings.HasPrefix(k, "__ow_") {
				params[k] = p
			}
		}
		switch method {
		case http.MethodPost, http.MethodPut, http.MethodPatch:
			payload, _ = json.Marshal(params)
			if ct == "" {
				ct = "application/json"
			}
		default:
			q := url.Values{}
			for k, p := range params {
				var s string
				if json.Unmarshal(p, &s) != nil {
					s = string(p)
				}
				q.Set(k, s)
			}
			if query == "" {
				query = q.Encode()
			}
		}
	}
	u := &url.URL{Path: path, RawQuery: query}
	req, err := http.NewRequestWithContext(parent.Context(), method, u.String(), bytes.NewReader(payload))
	if err != nil {
		return nil, fmt.Errorf("request from web-action parameters: %v", err)
	}
	for k, val := range headers {
		req.Header.Set(k, val)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	req.RemoteAddr = parent.RemoteAddr
	return req, nil
}

// plainText reports content that OpenWhisk passes as a plain string in
// __ow_body (JSON and binary arrive base64-encoded).
func plainText(ct string) bool {
	return strings.HasPrefix(ct, "text/") || strings.HasPrefix(ct, "application/x-www-form-urlencoded")
}

// textual reports answers returned as a plain string body.
func textual(ct string) bool {
	return ct == "" || plainText(ct) || strings.Contains(ct, "json")
}

func owError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": msg})
}
