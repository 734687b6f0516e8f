package ingest

import (
	"context"
	"errors"
	"net/http"

	"github.com/iotplatform/iotplatform/internal/bus"
)

// HTTPStatus is the HTTP status every edge answers for an ingest error
// (the HTTP gateway's status, the WebSocket ack's status): 400 malformed,
// 413 too large, 422 rejected items, 429 rate-limited, 503 when the bus did
// not make the batch durable in time, 500 otherwise.
func HTTPStatus(err error) int {
	var be *BatchError
	switch {
	case err == nil:
		return http.StatusOK
	case errors.As(err, &be):
		switch be.Class {
		case ClassRejected:
			return http.StatusUnprocessableEntity
		case ClassTooLarge:
			return http.StatusRequestEntityTooLarge
		case ClassRateLimited:
			return http.StatusTooManyRequests
		}
		return http.StatusBadRequest
	case errors.Is(err, bus.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// PublicMessage is what a device is told for an ingest error: the
// refusal's own words, never the cause of an internal failure (logged).
func PublicMessage(err error) string {
	switch HTTPStatus(err) {
	case http.StatusServiceUnavailable:
		// The ingest service logged the cause.
		return "the platform cannot take readings right now; nothing was stored, retry later"
	case http.StatusInternalServerError:
		return "internal error"
	}
	return err.Error()
}
