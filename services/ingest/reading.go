package ingest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
)

// Reading is one decoded reading, before it is checked against its sensor.
type Reading struct {
	SensorID int64
	// TimeNS is the measurement time in ns since the epoch; valid only when
	// HasTime (otherwise the receive time is used).
	TimeNS  int64
	HasTime bool
	Value   Value
}

type valueKind uint8

const (
	kindNone valueKind = iota
	kindJSON           // raw JSON token, coerced by type later
	kindDouble
	kindLong
	kindBool
	kindString
	kindObject
)

// Value is a reading's value as sent, before coercion to the sensor type.
type Value struct {
	kind valueKind
	raw  []byte
	d    float64
	l    int64
	b    bool
	s    string
	obj  *structpb.Struct
}

// Format is the payload encoding.
type Format int

// Payload formats.
const (
	// FormatJSON is one reading object or an array of them.
	FormatJSON Format = iota + 1
	// FormatProto is a binary iot.ingest.v1.ReadingBatch.
	FormatProto
	// FormatAny is undeclared: JSON or protobuf, decided by DecodeAny.
	FormatAny
)

// jsonReading mirrors the wire object; fields stay raw so every sensor_id,
// timestamp and value spelling is accepted and reported precisely.
type jsonReading struct {
	SensorID  json.RawMessage `json:"sensor_id"`
	Timestamp json.RawMessage `json:"timestamp"`
	Value     json.RawMessage `json:"value"`
}

// MediaJSON is the media type of JSON readings (a WebSocket text frame is
// JSON by definition).
const MediaJSON = "application/json"

// FormatOf is the one payload-format decision of every edge: a declared
// media type decides (the HTTP Content-Type; a WebSocket text frame is
// MediaJSON); an undeclared payload ("": MQTT, WebSocket binary frames) is
// FormatAny, which Decode resolves by its first byte. ok is false for a
// media type that is neither JSON nor protobuf.
func FormatOf(mediaType string) (f Format, ok bool) {
	if mediaType == "" {
		return FormatAny, true
	}
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil {
		return 0, false
	}
	switch mt {
	case MediaJSON:
		return FormatJSON, true
	case "application/x-protobuf", "application/protobuf", "application/vnd.google.protobuf":
		return FormatProto, true
	}
	return 0, false
}

// Decode parses a payload into readings. Errors are *BatchError of class
// ClassMalformed listing every bad item.
func Decode(f Format, payload []byte) ([]Reading, error) {
	switch f {
	case FormatJSON:
		return DecodeJSON(payload)
	case FormatAny:
		return DecodeAny(payload)
	case FormatProto:
		var b ingestv1.ReadingBatch
		if err := proto.Unmarshal(payload, &b); err != nil {
			return nil, malformed(-1, CodeMalformed, "invalid protobuf ReadingBatch: %v", err)
		}
		return FromProto(b.GetReadings())
	}
	return nil, malformed(-1, CodeMalformed, "unsupported payload format")
}

// DecodeAny parses a payload whose format nobody declared (MQTT payloads,
// WebSocket binary frames): JSON when it starts like JSON, else a protobuf
// ReadingBatch; a payload that is neither is refused as "not JSON or
// protobuf" with both parse errors, whatever its first byte.
func DecodeAny(payload []byte) ([]Reading, error) {
	if t := bytes.TrimLeft(payload, " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return DecodeJSON(payload)
	}
	var b ingestv1.ReadingBatch
	perr := proto.Unmarshal(payload, &b)
	if perr == nil && len(b.GetReadings()) > 0 {
		return FromProto(b.GetReadings())
	}
	if perr == nil {
		perr = fmt.Errorf("no readings in it")
	}
	_, jerr := scanReadings(payload)
	if jerr == nil {
		jerr = fmt.Errorf("not an object or array")
	}
	return nil, malformed(-1, CodeMalformed, "payload is not JSON or protobuf (as JSON: %v; as protobuf ReadingBatch: %v)", jerr, perr)
}

// DecodeJSON parses one reading object or an array of them.
func DecodeJSON(payload []byte) ([]Reading, error) {
	if len(bytes.TrimLeft(payload, " \t\r\n")) == 0 {
		return nil, malformed(-1, CodeMalformed, "empty body, want a JSON object or array")
	}
	items, err := scanReadings(payload)
	if err != nil {
		return nil, malformed(-1, CodeMalformed, "%v", err)
	}
	if len(items) == 0 {
		return nil, malformed(-1, CodeMissingField, "no readings")
	}
	out := make([]Reading, len(items))
	var errs []ItemError
	for i := range items {
		it := &items[i]
		r := &out[i]
		id, err := parseSensorID(it.SensorID)
		if err != nil {
			errs = append(errs, ItemError{Index: i, Code: codeOf(it.SensorID, CodeInvalidSensorID), Message: err.Error()})
			continue
		}
		r.SensorID = id
		if ts := it.Timestamp; len(ts) > 0 && !isNull(ts) {
			s := ts
			if ts[0] == '"' {
				var str string
				if json.Unmarshal(ts, &str) != nil {
					errs = append(errs, ItemError{Index: i, Code: CodeInvalidTimestamp, Message: errTimestamp.Error()})
					continue
				}
				s = []byte(str)
			}
			ns, err := ParseTimestamp(string(s))
			if err != nil {
				errs = append(errs, ItemError{Index: i, Code: CodeInvalidTimestamp, Message: err.Error()})
				continue
			}
			r.TimeNS, r.HasTime = ns, true
		}
		if len(it.Value) == 0 || isNull(it.Value) {
			errs = append(errs, ItemError{Index: i, Code: CodeMissingField, Message: "value is missing"})
			continue
		}
		r.Value = Value{kind: kindJSON, raw: it.Value}
	}
	if errs != nil {
		return nil, &BatchError{Class: ClassMalformed, Items: errs}
	}
	return out, nil
}

func isNull(b []byte) bool { return string(b) == "null" }

func codeOf(raw json.RawMessage, code string) string {
	if len(raw) == 0 || isNull(raw) {
		return CodeMissingField
	}
	return code
}

// parseSensorID accepts a positive integer as a JSON number or string.
func parseSensorID(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 || isNull(raw) {
		return 0, fmt.Errorf("sensor_id is missing")
	}
	s := raw
	if raw[0] == '"' {
		if len(raw) < 2 || raw[len(raw)-1] != '"' {
			return 0, fmt.Errorf("sensor_id must be a positive integer")
		}
		s = raw[1 : len(raw)-1]
	}
	id, err := strconv.ParseInt(string(s), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("sensor_id must be a positive integer, got %.40s", raw)
	}
	return id, nil
}

// FromProto converts protobuf readings (IngestService, binary payloads).
func FromProto(rs []*ingestv1.Reading) ([]Reading, error) {
	if len(rs) == 0 {
		return nil, malformed(-1, CodeMissingField, "no readings")
	}
	out := make([]Reading, len(rs))
	var errs []ItemError
	for i, pr := range rs {
		r := &out[i]
		if pr.GetSensorId() <= 0 {
			errs = append(errs, ItemError{Index: i, Code: CodeInvalidSensorID, Message: "sensor_id must be a positive integer"})
			continue
		}
		r.SensorID = pr.GetSensorId()
		if ts := pr.GetTimestamp(); ts != nil {
			if err := ts.CheckValid(); err != nil || ts.GetSeconds() < 0 {
				errs = append(errs, ItemError{Index: i, Code: CodeInvalidTimestamp, Message: "timestamp out of range"})
				continue
			}
			r.TimeNS, r.HasTime = ts.AsTime().UnixNano(), true
		}
		switch v := pr.GetValue().(type) {
		case *ingestv1.Reading_DoubleValue:
			r.Value = Value{kind: kindDouble, d: v.DoubleValue}
		case *ingestv1.Reading_LongValue:
			r.Value = Value{kind: kindLong, l: v.LongValue}
		case *ingestv1.Reading_BoolValue:
			r.Value = Value{kind: kindBool, b: v.BoolValue}
		case *ingestv1.Reading_StringValue:
			r.Value = Value{kind: kindString, s: v.StringValue}
		case *ingestv1.Reading_ObjectValue:
			if v.ObjectValue == nil {
				errs = append(errs, ItemError{Index: i, Code: CodeMissingField, Message: "value is missing"})
				continue
			}
			r.Value = Value{kind: kindObject, obj: v.ObjectValue}
		default:
			errs = append(errs, ItemError{Index: i, Code: CodeMissingField, Message: "value is missing"})
		}
	}
	if errs != nil {
		return nil, &BatchError{Class: ClassMalformed, Items: errs}
	}
	return out, nil
}
