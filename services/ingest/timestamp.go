package ingest

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// Magnitude bounds deciding the unit of a numeric timestamp: below 1e11 it is
// seconds (until the year 5138), below 1e14 milliseconds, below 1e17
// microseconds, else nanoseconds.
const (
	maxSeconds = 1e11
	maxMillis  = 1e14
	maxMicros  = 1e17
)

var errTimestamp = errors.New("timestamp must be a non-negative number of s, ms, µs or ns since the epoch, or an RFC 3339 string")

// ParseTimestamp normalises a timestamp given as a decimal number (by
// magnitude: seconds, milliseconds, microseconds or nanoseconds, fractional
// allowed) or an RFC 3339 string to nanoseconds since the Unix epoch.
func ParseTimestamp(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errTimestamp
	}
	if c := s[0]; c >= '0' && c <= '9' && !strings.ContainsAny(s, "-:T") || c == '+' || c == '.' {
		return parseNumericTimestamp(s)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, errTimestamp
	}
	if t.Year() < 1678 || t.Year() > 2261 { // outside int64 nanoseconds
		return 0, errTimestamp
	}
	return t.UnixNano(), nil
}

// parseNumericTimestamp handles "123", "123.456" exactly and exponent forms
// through float64.
func parseNumericTimestamp(s string) (int64, error) {
	s = strings.TrimPrefix(s, "+")
	if strings.ContainsAny(s, "eE") {
		if !isDecimal(s) {
			return 0, errTimestamp
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return 0, errTimestamp
		}
		return floatTimestamp(f)
	}
	intPart, frac, _ := strings.Cut(s, ".")
	if intPart == "" {
		intPart = "0"
	}
	if !digits(intPart) || !digits(frac) || (frac == "" && strings.HasSuffix(s, ".")) {
		return 0, errTimestamp
	}
	n, err := strconv.ParseUint(intPart, 10, 64)
	if err != nil || n > math.MaxInt64 {
		return 0, errTimestamp
	}
	var unit int64
	switch {
	case n < maxSeconds:
		unit = 1e9
	case n < maxMillis:
		unit = 1e6
	case n < maxMicros:
		unit = 1e3
	default:
		unit = 1
	}
	// n is below the unit's bound, so n*unit < 1e20 could still overflow for
	// µs close to 1e17: check first.
	if int64(n) > math.MaxInt64/unit {
		return 0, errTimestamp
	}
	ns := int64(n) * unit
	// Fraction digits below the unit's resolution are truncated.
	if frac != "" && unit > 1 {
		digitsNeeded := int(math.Log10(float64(unit)))
		if len(frac) > digitsNeeded {
			frac = frac[:digitsNeeded]
		}
		f, _ := strconv.ParseInt(frac, 10, 64)
		for i := len(frac); i < digitsNeeded; i++ {
			f *= 10
		}
		if ns > math.MaxInt64-f {
			return 0, errTimestamp
		}
		ns += f
	}
	return ns, nil
}

func floatTimestamp(f float64) (int64, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, errTimestamp
	}
	var ns float64
	switch {
	case f < maxSeconds:
		ns = f * 1e9
	case f < maxMillis:
		ns = f * 1e6
	case f < maxMicros:
		ns = f * 1e3
	default:
		ns = f
	}
	if ns >= math.MaxInt64 {
		return 0, errTimestamp
	}
	return int64(ns), nil
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
