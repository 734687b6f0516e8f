package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Coerce converts v to the sensor value type t and stores it in rec.
func Coerce(v Value, t registry.ValueType, rec *busv1.Record) error {
	if v.kind == kindJSON {
		return coerceJSON(v.raw, t, rec)
	}
	switch t {
	case registry.TypeDouble:
		switch v.kind {
		case kindDouble:
			return setDouble(v.d, rec)
		case kindLong:
			return setDouble(float64(v.l), rec)
		case kindString:
			return parseDouble(v.s, rec)
		}
	case registry.TypeLong:
		switch v.kind {
		case kindLong:
			rec.Value = &busv1.Record_LongValue{LongValue: v.l}
			return nil
		case kindDouble:
			return setIntegral(v.d, rec)
		case kindString:
			return parseLong(v.s, rec)
		}
	case registry.TypeBoolean:
		switch v.kind {
		case kindBool:
			rec.Value = &busv1.Record_BoolValue{BoolValue: v.b}
			return nil
		case kindString:
			return parseBool(v.s, rec)
		}
	case registry.TypeString:
		var s string
		switch v.kind {
		case kindString:
			s = v.s
		case kindDouble:
			s = strconv.FormatFloat(v.d, 'g', -1, 64)
		case kindLong:
			s = strconv.FormatInt(v.l, 10)
		case kindBool:
			s = strconv.FormatBool(v.b)
		default:
			return errWantType(t)
		}
		rec.Value = &busv1.Record_StringValue{StringValue: s}
		return nil
	case registry.TypeObject:
		if v.kind == kindObject {
			rec.Value = &busv1.Record_ObjectValue{ObjectValue: v.obj}
			return nil
		}
	default:
		return fmt.Errorf("sensor has unknown value type %q", t)
	}
	return errWantType(t)
}

func errWantType(t registry.ValueType) error {
	return fmt.Errorf("value does not fit the sensor type %s", t)
}

func coerceJSON(raw []byte, t registry.ValueType, rec *busv1.Record) error {
	if len(raw) == 0 {
		return errWantType(t)
	}
	c := raw[0]
	switch {
	case c == '"':
		s, err := jsonString(raw)
		if err != nil {
			return errWantType(t)
		}
		switch t {
		case registry.TypeString:
			rec.Value = &busv1.Record_StringValue{StringValue: s}
			return nil
		case registry.TypeObject:
			return errWantType(t)
		}
		return Coerce(Value{kind: kindString, s: s}, t, rec)
	case c == 't' || c == 'f':
		if t == registry.TypeString {
			rec.Value = &busv1.Record_StringValue{StringValue: string(raw)}
			return nil
		}
		return Coerce(Value{kind: kindBool, b: c == 't'}, t, rec)
	case c == '{':
		if t != registry.TypeObject {
			return errWantType(t)
		}
		var st structpb.Struct
		if err := protojson.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("invalid object value: %w", err)
		}
		rec.Value = &busv1.Record_ObjectValue{ObjectValue: &st}
		return nil
	case c == '[':
		return errWantType(t)
	default: // number token
		switch t {
		case registry.TypeString:
			rec.Value = &busv1.Record_StringValue{StringValue: string(raw)}
			return nil
		case registry.TypeDouble:
			return parseDouble(string(raw), rec)
		case registry.TypeLong:
			return parseLong(string(raw), rec)
		case registry.TypeBoolean:
			switch string(raw) {
			case "0":
				rec.Value = &busv1.Record_BoolValue{BoolValue: false}
				return nil
			case "1":
				rec.Value = &busv1.Record_BoolValue{BoolValue: true}
				return nil
			}
		}
		return errWantType(t)
	}
}

// jsonString unquotes a JSON string token, fast when it has no escapes.
func jsonString(raw []byte) (string, error) {
	if len(raw) >= 2 && raw[len(raw)-1] == '"' && bytes.IndexByte(raw[1:len(raw)-1], '\\') < 0 && utf8.Valid(raw[1:len(raw)-1]) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

func setDouble(f float64, rec *busv1.Record) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return errors.New("value must be a finite number")
	}
	rec.Value = &busv1.Record_DoubleValue{DoubleValue: f}
	return nil
}

// isDecimal reports whether s is a number in decimal notation (sign,
// digits, optional fraction and exponent): strconv.ParseFloat also takes
// hexadecimal floats ("0x1p3"), underscores, "inf" and "nan", which are
// not numbers a sensor sends.
func isDecimal(s string) bool {
	s = strings.TrimLeft(s, "+-")
	mant, exp, hasExp := strings.Cut(strings.ToLower(s), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	digits := func(d string) bool {
		for _, c := range d {
			if c < '0' || c > '9' {
				return false
			}
		}
		return true
	}
	if intPart+frac == "" || !digits(intPart) || !digits(frac) {
		return false
	}
	if hasExp {
		exp = strings.TrimLeft(exp, "+-")
		return exp != "" && digits(exp)
	}
	return true
}

func parseDouble(s string, rec *busv1.Record) error {
	s = strings.TrimSpace(s)
	if !isDecimal(s) {
		return errWantType(registry.TypeDouble)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errWantType(registry.TypeDouble)
	}
	return setDouble(f, rec)
}

func setIntegral(f float64, rec *busv1.Record) error {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return fmt.Errorf("value %v is not an integer in range of a long", f)
	}
	rec.Value = &busv1.Record_LongValue{LongValue: int64(f)}
	return nil
}

func parseLong(s string, rec *busv1.Record) error {
	s = strings.TrimSpace(s)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		rec.Value = &busv1.Record_LongValue{LongValue: n}
		return nil
	}
	if !isDecimal(s) {
		return errWantType(registry.TypeLong)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errWantType(registry.TypeLong)
	}
	return setIntegral(f, rec)
}

func parseBool(s string, rec *busv1.Record) error {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "1":
		rec.Value = &busv1.Record_BoolValue{BoolValue: true}
	case "false", "0":
		rec.Value = &busv1.Record_BoolValue{BoolValue: false}
	default:
		return errWantType(registry.TypeBoolean)
	}
	return nil
}
