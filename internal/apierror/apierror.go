// Package apierror is the platform's one error answer over HTTP
// (docs/ERRORS.md): the body {"code", "message"} (plus "details" where the
// RPC has them), the code of an HTTP status, and the HTTP status of a
// Connect code. The REST transcoder, the search proxy, function mode and
// the device edges all answer through it.
package apierror

import (
	"encoding/json"
	"errors"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
)

// Body is the one error body.
type Body struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Details lists the BadRequest field violations an RPC error carries
	// (e.g. the refused row of ImportDevices).
	Details []FieldViolation `json:"details,omitempty"`
}

// FieldViolation is a BadRequest field violation in an error body.
type FieldViolation struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

// Write answers status with the error body {code, message}.
func Write(w http.ResponseWriter, status int, code, msg string) {
	WriteBody(w, status, Body{Code: code, Message: msg})
}

// WriteBody answers status with b as JSON.
func WriteBody(w http.ResponseWriter, status int, b Body) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(b)
}

// httpStatus maps Connect codes to HTTP statuses for REST answers.
var httpStatus = map[connect.Code]int{
	connect.CodeCanceled: 499, connect.CodeUnknown: 500, connect.CodeInvalidArgument: 400,
	connect.CodeDeadlineExceeded: 504, connect.CodeNotFound: 404, connect.CodeAlreadyExists: 409,
	connect.CodePermissionDenied: 403, connect.CodeResourceExhausted: 429, connect.CodeFailedPrecondition: 400,
	connect.CodeAborted: 409, connect.CodeOutOfRange: 400, connect.CodeUnimplemented: 501,
	connect.CodeInternal: 500, connect.CodeUnavailable: 503, connect.CodeDataLoss: 500,
	connect.CodeUnauthenticated: 401,
}

// HTTPStatus is the HTTP status of a Connect code (500 for an unknown one).
func HTTPStatus(c connect.Code) int {
	if s, ok := httpStatus[c]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// CodeOfStatus is the error code of an HTTP status the device edges answer
// for a refused connection or request (401, 403, 429, 503; "internal" for
// anything else).
func CodeOfStatus(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated.String()
	case http.StatusForbidden:
		return connect.CodePermissionDenied.String()
	case http.StatusServiceUnavailable:
		return connect.CodeUnavailable.String()
	case http.StatusTooManyRequests:
		return connect.CodeResourceExhausted.String()
	}
	return connect.CodeInternal.String()
}

// WriteConnect answers an RPC error in REST form: the HTTP status of its
// Connect code, its message (never the text of an internal error: that is
// for the logs), its field violations, and Retry-After when the error
// carries it. It returns the code it answered.
func WriteConnect(w http.ResponseWriter, err error) connect.Code {
	code, msg := connect.CodeInternal, "internal error"
	var details []FieldViolation
	var ce *connect.Error
	if errors.As(err, &ce) {
		code, msg = ce.Code(), ce.Message()
		if ra := ce.Meta().Get("Retry-After"); ra != "" {
			w.Header().Set("Retry-After", ra)
		}
		details = fieldViolations(ce)
	}
	if code == connect.CodeInternal || code == connect.CodeUnknown || code == connect.CodeDataLoss {
		msg = "internal error"
	}
	WriteBody(w, HTTPStatus(code), Body{Code: code.String(), Message: msg, Details: details})
	return code
}

// fieldViolations returns the BadRequest field violations of ce.
func fieldViolations(ce *connect.Error) []FieldViolation {
	var out []FieldViolation
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			continue
		}
		if br, ok := v.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				out = append(out, FieldViolation{Field: fv.GetField(), Description: fv.GetDescription()})
			}
		}
	}
	return out
}
