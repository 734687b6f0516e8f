package apierror

import (
	"encoding/json"
	"errors"
	"net/http/httptest"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// TestWriteConnect_OneShapeStatusAndNoInternals: every code gets its HTTP
// status and the {code, message} body; internal errors never show their
// text; Retry-After and field violations are kept.
func TestWriteConnect_OneShapeStatusAndNoInternals(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
		msg    string
	}{
		{connect.NewError(connect.CodeNotFound, errors.New("device 7 not found")), 404, "not_found", "device 7 not found"},
		{connect.NewError(connect.CodeResourceExhausted, errors.New("slow down")), 429, "resource_exhausted", "slow down"},
		{connect.NewError(connect.CodeInternal, errors.New("pq: password authentication failed")), 500, "internal", "internal error"},
		{errors.New("dial tcp 10.0.0.1:5432: refused"), 500, "internal", "internal error"},
	} {
		w := httptest.NewRecorder()
		WriteConnect(w, tc.err)
		var b Body
		if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
			t.Fatal(err)
		}
		if w.Code != tc.status || b.Code != tc.code || b.Message != tc.msg || w.Header().Get("Content-Type") != "application/json" {
			t.Errorf("%v: %d %+v, want %d %s %q", tc.err, w.Code, b, tc.status, tc.code, tc.msg)
		}
	}
	ce := connect.NewError(connect.CodeInvalidArgument, errors.New("row 3 refused"))
	ce.Meta().Set("Retry-After", "2")
	d, _ := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "rows[3]", Description: "duplicate"}}})
	ce.AddDetail(d)
	w := httptest.NewRecorder()
	WriteConnect(w, ce)
	var b Body
	_ = json.Unmarshal(w.Body.Bytes(), &b)
	if w.Header().Get("Retry-After") != "2" || len(b.Details) != 1 || b.Details[0].Field != "rows[3]" {
		t.Fatalf("Retry-After %q, details %+v", w.Header().Get("Retry-After"), b.Details)
	}
	for status, code := range map[int]string{401: "unauthenticated", 403: "permission_denied", 429: "resource_exhausted", 503: "unavailable", 418: "internal"} {
		if got := CodeOfStatus(status); got != code {
			t.Errorf("CodeOfStatus(%d) = %s, want %s", status, got, code)
		}
	}
}
