// Package store is the time-series store contract: typed readings written in
// idempotent batches (a reading's identity is its sensor, nanosecond
// timestamp and Seq, so a replay overwrites itself instead of duplicating
// while distinct readings sharing an instant are all kept), read back by range, aggregated
// into buckets, and the latest value per sensor; plus the dead-letter table.
//
// Backends live in sibling packages (storeembedded: SQLite in the data dir,
// storeopensearch) and all pass storetest.Run.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/iotplatform/iotplatform/internal/deadletter"
)

// Errors backends return, wrapped, so callers can map them with errors.Is.
var (
	// ErrInvalid means the query itself is wrong (bad range, too many buckets).
	ErrInvalid = errors.New("invalid query")
	// ErrUnsupported means the backend cannot do this (e.g. search on the
	// embedded store).
	ErrUnsupported = errors.New("not supported by this store")
)

// Kind is the type of a reading's value.
type Kind uint8

// Value kinds, matching the sensor value types of the registry.
const (
	KindDouble Kind = iota + 1
	KindLong
	KindBool
	KindString
	KindObject
)

// String returns the registry type name of k.
func (k Kind) String() string {
	switch k {
	case KindDouble:
		return "double"
	case KindLong:
		return "long"
	case KindBool:
		return "boolean"
	case KindString:
		return "string"
	case KindObject:
		return "object"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Value is a typed reading value; only the field of Kind is meaningful.
type Value struct {
	Kind   Kind
	Double float64
	Long   int64
	Bool   bool
	// Str holds string values.
	Str string
	// Object holds object values as a JSON object.
	Object []byte
}

// Numeric returns the value as a float64 for aggregation (booleans are 0/1)
// and whether it is numeric at all.
func (v Value) Numeric() (float64, bool) {
	switch v.Kind {
	case KindDouble:
		return v.Double, true
	case KindLong:
		return float64(v.Long), true
	case KindBool:
		if v.Bool {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Reading is one stored measurement. (SensorID, TimeNS, Seq) is its
// identity: writing a reading with the same identity again replaces it (a
// replay), any other reading is kept beside it.
type Reading struct {
	DeviceID int64
	SensorID int64
	// TimeNS is the measurement time in ns since the Unix epoch.
	TimeNS int64
	// Seq tells apart readings of one sensor sharing TimeNS (see
	// docs/INGEST.md "Identity"); readings of one instant are ordered by it.
	Seq   int64
	Value Value
	// ReceiveTimeNS is when the gateway received it.
	ReceiveTimeNS int64
	// Protocol is the edge it came through (http, ws, mqtt, grpc).
	Protocol string
}

// Order of a range listing.
type Order uint8

// Orders.
const (
	Ascending Order = iota
	Descending
)

// ListQuery selects readings of one sensor in [FromNS, ToNS).
type ListQuery struct {
	SensorID int64
	FromNS   int64
	// ToNS is exclusive; 0 means no upper bound.
	ToNS  int64
	Limit int
	Order Order
	// AfterNS and AfterSeq continue a listing after the reading with this
	// timestamp and seq (exclusive, in the listing's order). They are what
	// page tokens carry, so pages are stable under concurrent writes.
	AfterNS  int64
	AfterSeq int64
	// HasAfter says AfterNS is set (0 is a valid timestamp).
	HasAfter bool
}

// MaxLimit is the largest page a listing returns.
const MaxLimit = 10000

// MaxBuckets is the most buckets an aggregation may produce.
const MaxBuckets = 10000

// Func is an aggregation function.
type Func string

// Aggregation functions.
const (
	FuncAvg   Func = "avg"
	FuncMin   Func = "min"
	FuncMax   Func = "max"
	FuncSum   Func = "sum"
	FuncCount Func = "count"
	FuncFirst Func = "first"
	FuncLast  Func = "last"
)

// ParseFunc returns the function named s.
func ParseFunc(s string) (Func, error) {
	switch f := Func(s); f {
	case FuncAvg, FuncMin, FuncMax, FuncSum, FuncCount, FuncFirst, FuncLast:
		return f, nil
	}
	return "", fmt.Errorf("%w: unknown aggregation function %q (want avg, min, max, sum, count, first or last)", ErrInvalid, s)
}

// AggregateQuery groups the numeric readings of one sensor in [FromNS, ToNS)
// into buckets of Interval starting at FromNS.
type AggregateQuery struct {
	SensorID int64
	FromNS   int64
	ToNS     int64
	Interval time.Duration
}

// Validate checks the range and the bucket count.
func (q AggregateQuery) Validate() error {
	if q.Interval < time.Second {
		return fmt.Errorf("%w: interval must be at least 1s", ErrInvalid)
	}
	if q.ToNS <= q.FromNS {
		return fmt.Errorf("%w: to must be after from", ErrInvalid)
	}
	if n := (q.ToNS - q.FromNS + int64(q.Interval) - 1) / int64(q.Interval); n > MaxBuckets {
		return fmt.Errorf("%w: %d buckets requested, at most %d allowed (widen the interval or narrow the range)", ErrInvalid, n, MaxBuckets)
	}
	return nil
}

// Bucket is one aggregation interval. Every function is computed; empty
// buckets are omitted. Non-numeric readings only count.
type Bucket struct {
	// StartNS is the inclusive start of the bucket.
	StartNS int64
	Count   int64
	Avg     float64
	Min     float64
	Max     float64
	Sum     float64
	// First and Last are the values of the earliest and latest reading.
	First float64
	Last  float64
}

// DeadLetterQuery selects dead letters, newest first.
type DeadLetterQuery struct {
	// DeviceIDs keeps letters of these devices; empty keeps all.
	DeviceIDs []int64
	// SensorID keeps letters of that sensor; 0 keeps all.
	SensorID int64
	Limit    int
	// PageToken continues a previous listing (opaque, backend-specific).
	PageToken string
}

// DeadLetter is a stored dead letter.
type DeadLetter struct {
	ID string
	deadletter.Letter
}

// Writer writes readings and dead letters.
type Writer interface {
	// Write stores readings idempotently; it returns once they are durable.
	Write(ctx context.Context, rs []Reading) error
	// WriteDeadLetters stores payloads that can never become readings.
	WriteDeadLetters(ctx context.Context, dls []deadletter.Letter) error
}

// Reader queries readings and dead letters.
type Reader interface {
	// List returns up to q.Limit readings in order and whether more follow.
	List(ctx context.Context, q ListQuery) ([]Reading, bool, error)
	Aggregate(ctx context.Context, q AggregateQuery) ([]Bucket, error)
	// Latest returns the newest reading of each sensor that has one.
	Latest(ctx context.Context, sensorIDs []int64) ([]Reading, error)
	// ListDeadLetters returns a page of dead letters and the next page token.
	ListDeadLetters(ctx context.Context, q DeadLetterQuery) ([]DeadLetter, string, error)
}

// Store is a time-series backend.
type Store interface {
	Writer
	Reader
	// DeleteSensor removes every reading of the sensor.
	DeleteSensor(ctx context.Context, sensorID int64) error
	// Feed is notified of readings after they are durably written by this
	// process.
	Feed() *Feed
	Ping(ctx context.Context) error
	Close() error
}

// ErrForbiddenQuery means a search body tried to leave the sensor's scope
// (Searcher.Search wraps it; the proxy answers 400).
var ErrForbiddenQuery = errors.New("search body not allowed")

// Searcher runs a raw OpenSearch query DSL body restricted to one sensor
// (the consumer search proxy). Only the OpenSearch store implements it.
type Searcher interface {
	// Search returns the backend's JSON response and HTTP status.
	Search(ctx context.Context, sensor SensorRef, body []byte) ([]byte, int, error)
}

// SensorRef names a sensor and its device (per-sensor index names need both).
type SensorRef struct {
	DeviceID int64
	SensorID int64
}

// ClampLimit returns a page size within [1, MaxLimit], def when n <= 0.
func ClampLimit(n, def int) int {
	switch {
	case n <= 0:
		return def
	case n > MaxLimit:
		return MaxLimit
	}
	return n
}

// RetentionPolicy says what a retention pass may delete.
type RetentionPolicy struct {
	// RawBefore returns the instant (ns) before which a sensor's raw
	// readings are expired; 0 keeps them.
	RawBefore func(sensorID int64) int64
	// MinuteBeforeNS is the instant before which per-minute aggregates
	// are folded into per-hour ones and deleted; 0 keeps them.
	MinuteBeforeNS int64
}

// Expirer deletes expired readings in small steps, keeping their per-minute
// and per-hour aggregates, which Aggregate reads for ranges whose raw
// readings are gone. Stores that support retention implement it.
type Expirer interface {
	// Expire deletes up to about limit expired rows in one short write and
	// reports how many it deleted (0: nothing is left to delete now).
	Expire(ctx context.Context, p RetentionPolicy, limit int) (int, error)
}
