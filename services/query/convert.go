package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
)

// parseTime reads an RFC 3339 timestamp or epoch milliseconds; ok is false
// for the empty string.
func parseTime(field, s string) (ns int64, ok bool, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false, nil
	}
	if ms, err := strconv.ParseInt(s, 10, 64); err == nil {
		if ms > (1<<63-1)/int64(time.Millisecond) || ms < -(1<<63-1)/int64(time.Millisecond) {
			return 0, false, invalid("%s: epoch milliseconds out of range", field)
		}
		return ms * int64(time.Millisecond), true, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false, invalid("%s: want RFC 3339 (2026-11-28T04:00:00Z) or epoch milliseconds, got %q", field, s)
	}
	return t.UnixNano(), true, nil
}

// parseInterval accepts Go durations plus a "d" (day) suffix.
func parseInterval(s string) (time.Duration, error) {
	if s == "" {
		return 0, invalid("interval is required (e.g. 1m)")
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseFloat(n, 64)
		if err == nil {
			return time.Duration(days * float64(24*time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid("interval %q: want a duration like 30s, 1m, 1h or 1d", s)
	}
	return d, nil
}

func invalid(format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf(format, args...))
}

func toProto(r store.Reading) *queryv1.Reading {
	out := &queryv1.Reading{SensorId: r.SensorID, DeviceId: r.DeviceID, Timestamp: nsToTimestamp(r.TimeNS)}
	switch v := r.Value; v.Kind {
	case store.KindDouble:
		out.Value = &queryv1.Reading_DoubleValue{DoubleValue: v.Double}
	case store.KindLong:
		out.Value = &queryv1.Reading_LongValue{LongValue: v.Long}
	case store.KindBool:
		out.Value = &queryv1.Reading_BoolValue{BoolValue: v.Bool}
	case store.KindString:
		out.Value = &queryv1.Reading_StringValue{StringValue: v.Str}
	case store.KindObject:
		st := &structpb.Struct{}
		if err := st.UnmarshalJSON(v.Object); err == nil {
			out.Value = &queryv1.Reading_ObjectValue{ObjectValue: st}
		}
	}
	return out
}

func nsToTimestamp(ns int64) *timestamppb.Timestamp {
	return timestamppb.New(time.Unix(0, ns).UTC())
}

func readingsToProto(rs []store.Reading) []*queryv1.Reading {
	out := make([]*queryv1.Reading, len(rs))
	for i, r := range rs {
		out[i] = toProto(r)
	}
	return out
}

// toConnect maps domain errors to Connect codes; this is the one place.
func toConnect(ctx context.Context, log *slog.Logger, err error) error {
	var ce *connect.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ce):
		return err
	case errors.Is(err, store.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, store.ErrUnsupported):
		return connect.NewError(connect.CodeUnimplemented, err)
	case errors.Is(err, registry.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	log.ErrorContext(ctx, "query failed", "err", err)
	return connect.NewError(connect.CodeUnavailable, errors.New("the store could not answer; retry later"))
}
