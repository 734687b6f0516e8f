package app

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"

	"github.com/iotplatform/iotplatform"
	"github.com/iotplatform/iotplatform/internal/apierror"
)

// restRoute is one path template of the REST API and its methods, read
// from the generated OpenAPI document (the transcoder's own routing table
// is not exported).
type restRoute struct {
	segs    []string // "" matches any one segment ({param})
	methods []string
}

var restRoutes = sync.OnceValue(func() []restRoute {
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	_ = json.Unmarshal(iotplatform.OpenAPI, &doc)
	var out []restRoute
	for path, ops := range doc.Paths {
		r := restRoute{segs: strings.Split(strings.Trim(path, "/"), "/")}
		for i, s := range r.segs {
			if strings.HasPrefix(s, "{") {
				r.segs[i] = ""
			}
		}
		for m := range ops {
			r.methods = append(r.methods, strings.ToUpper(m))
		}
		out = append(out, r)
	}
	return out
})

// allowedMethods lists the methods the REST API serves on path.
func allowedMethods(path string) []string {
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var out []string
	for _, r := range restRoutes() {
		if len(r.segs) != len(segs) {
			continue
		}
		match := true
		for i, s := range r.segs {
			if s != "" && s != segs[i] {
				match = false
				break
			}
		}
		if match {
			for _, m := range r.methods {
				if !slices.Contains(out, m) {
					out = append(out, m)
				}
			}
		}
	}
	slices.Sort(out)
	return out
}

// restRoutingError answers requests the transcoder has no route for: 405
// with Allow when the path exists with other methods, 404 otherwise, in
// the API's one error shape.
func restRoutingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, status int) {
	if status == http.StatusMethodNotAllowed {
		allowed := allowedMethods(r.URL.Path)
		if len(allowed) > 0 {
			w.Header().Set("Allow", strings.Join(allowed, ", "))
		}
		apierror.Write(w, status, CodeMethodNotAllowed, r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allowed, ", "))
		return
	}
	if status == http.StatusNotFound {
		apierror.Write(w, status, connect.CodeNotFound.String(), "no API resource at "+r.URL.Path)
		return
	}
	runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, status)
}

// CodeMethodNotAllowed is the error code of a wrong HTTP method (405).
const CodeMethodNotAllowed = "method_not_allowed"

// transcoderMessage turns the REST transcoder's own parse errors (Go error
// chains such as `type mismatch, parameter: id, error: strconv.ParseInt:
// parsing "abc": invalid syntax`) into words a caller can act on.
func transcoderMessage(msg string) string {
	switch {
	case strings.HasPrefix(msg, "type mismatch, parameter: "):
		param, _, _ := strings.Cut(strings.TrimPrefix(msg, "type mismatch, parameter: "), ",")
		return param + " must be a positive integer"
	case strings.HasPrefix(msg, "missing parameter "):
		return msg
	case strings.HasPrefix(msg, "parsing field "):
		field, _, _ := strings.Cut(strings.TrimPrefix(msg, "parsing field "), ":")
		return "query parameter " + strings.Trim(field, `"`) + " has an invalid value"
	case strings.HasPrefix(msg, "proto:"):
		detail := strings.TrimSpace(strings.TrimPrefix(msg, "proto:"))
		return "request body is not valid JSON for this call: " + detail
	case msg == "EOF" || msg == "unexpected EOF":
		return "request body is not valid JSON: it ends too early"
	}
	if strings.Contains(msg, "strconv.") {
		return "a request parameter has an invalid value"
	}
	return msg
}
