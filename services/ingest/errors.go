package ingest

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Class says why a batch was refused, so every edge can map it to its own
// status (HTTP code, Connect code, MQTT reason code).
type Class int

// Refusal classes.
const (
	// ClassMalformed: the payload cannot be parsed or lacks required fields
	// (HTTP 400).
	ClassMalformed Class = iota + 1
	// ClassRejected: well-formed, but an item names an unknown sensor or a
	// sensor of another device, or its value does not fit the sensor type
	// (HTTP 422).
	ClassRejected
	// ClassTooLarge: more readings than the configured batch limit (HTTP 413).
	ClassTooLarge
	// ClassRateLimited: the device exceeded its ingest rate limit (HTTP 429
	// with Retry-After, resource_exhausted, MQTT 5 reason 0x96); nothing of
	// the batch was stored.
	ClassRateLimited
)

// Item error codes (ItemError.Code), machine-readable and stable.
const (
	CodeMalformed        = "malformed"
	CodeMissingField     = "missing_field"
	CodeInvalidSensorID  = "invalid_sensor_id"
	CodeInvalidTimestamp = "invalid_timestamp"
	CodeUnknownSensor    = "unknown_sensor"
	CodeInvalidValue     = "invalid_value"
	CodeTooLarge         = "too_large"
	CodeUnavailable      = "unavailable"
)

// ItemError says why one reading was refused; Index is -1 for the whole
// payload.
type ItemError struct {
	Index   int    `json:"index"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// BatchError refuses a whole batch (batches are all-or-nothing) and lists
// the items that caused it.
type BatchError struct {
	Class Class
	Items []ItemError
	// RetryAfter is set for ClassRateLimited: when the batch would fit.
	RetryAfter time.Duration
}

// RetryAfter returns how long the sender of a rate-limited batch should
// wait (0 for other errors).
func RetryAfter(err error) time.Duration {
	var be *BatchError
	if errors.As(err, &be) && be.Class == ClassRateLimited {
		return be.RetryAfter
	}
	return 0
}

func (e *BatchError) Error() string {
	var b strings.Builder
	b.WriteString("batch refused")
	for i, it := range e.Items {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Items)-3)
			break
		}
		if it.Index >= 0 {
			fmt.Fprintf(&b, "; item %d: %s", it.Index, it.Message)
		} else {
			fmt.Fprintf(&b, "; %s", it.Message)
		}
	}
	return b.String()
}

func malformed(index int, code, format string, args ...any) *BatchError {
	return &BatchError{Class: ClassMalformed, Items: []ItemError{{Index: index, Code: code, Message: fmt.Sprintf(format, args...)}}}
}
