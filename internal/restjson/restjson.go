// Package restjson is the REST transcoder's JSON marshaler: the same JSON
// as protojson with UseProtoNames and EmitUnpopulated, written from a plan
// cached per message type instead of protojson's per-call reflection,
// sorting and allocations (which were half the CPU of a ListSensors REST
// call). Messages it does not cover (well-known types other than
// Timestamp, invalid UTF-8 or out-of-range timestamps) fall back to
// protojson, so the output never differs in meaning.
package restjson

import (
	"cmp"
	"encoding/base64"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Marshaler is a runtime.JSONPb whose Marshal takes the fast path for
// protobuf messages. JSONPb.MarshalOptions must be UseProtoNames and
// EmitUnpopulated (what the fast path writes); everything else is JSONPb's.
type Marshaler struct {
	*runtime.JSONPb
}

// Marshal encodes v like JSONPb.Marshal.
func (m Marshaler) Marshal(v any) ([]byte, error) {
	if pm, ok := v.(proto.Message); ok {
		msg := pm.ProtoReflect()
		// Start from the size of the last answer of this type (at most
		// 64 KiB): growing from nil copied a list answer ~10 times (4 % of
		// the CPU of REST ListSensors).
		hint := lastSize(msg.Descriptor())
		if b, ok := Append(make([]byte, 0, hint.Load()), msg); ok {
			hint.Store(int64(min(len(b), 64<<10)))
			return b, nil
		}
	}
	return m.JSONPb.Marshal(v)
}

// sizes holds an *atomic.Int64 per message type: the length of its last
// JSON answer.
var sizes sync.Map

func lastSize(d protoreflect.MessageDescriptor) *atomic.Int64 {
	if v, ok := sizes.Load(d.FullName()); ok {
		return v.(*atomic.Int64)
	}
	v, _ := sizes.LoadOrStore(d.FullName(), new(atomic.Int64))
	return v.(*atomic.Int64)
}

// Append appends the JSON of m to buf; false means m (or a value in it) is
// not covered and the caller must use protojson.
func Append(buf []byte, m protoreflect.Message) ([]byte, bool) {
	p := planFor(m.Descriptor())
	if p == nil {
		return buf, false
	}
	return p.append(buf, m)
}

type field struct {
	fd protoreflect.FieldDescriptor
	// name is `"text_name":`.
	name     []byte
	oneof    bool
	presence bool
	list     bool
	kind     protoreflect.Kind
	// sub is the plan of a message field (nil for Timestamp).
	sub *plan
	ts  bool
	// mapKey and mapVal describe a map field.
	mapKey protoreflect.Kind
	mapVal *field
}

type plan struct {
	fields []field
}

var (
	plansMu sync.RWMutex
	plans   = map[protoreflect.FullName]*plan{}
	// unsupported marks message types that always fall back.
	unsupported = map[protoreflect.FullName]bool{}
)

const timestampName = "google.protobuf.Timestamp"

func planFor(md protoreflect.MessageDescriptor) *plan {
	name := md.FullName()
	plansMu.RLock()
	p, ok := plans[name]
	bad := unsupported[name]
	plansMu.RUnlock()
	if ok || bad {
		return p
	}
	plansMu.Lock()
	defer plansMu.Unlock()
	p = build(md, map[protoreflect.FullName]bool{})
	if p == nil {
		unsupported[name] = true
	} else {
		plans[name] = p
	}
	return p
}

// build makes the plan of md (plansMu held); nil when not covered.
// Recursive message types are not covered.
func build(md protoreflect.MessageDescriptor, visiting map[protoreflect.FullName]bool) *plan {
	name := md.FullName()
	if p, ok := plans[name]; ok {
		return p
	}
	if unsupported[name] || visiting[name] || md.ParentFile().Package() == "google.protobuf" {
		return nil
	}
	visiting[name] = true
	defer delete(visiting, name)
	fds := md.Fields()
	p := &plan{fields: make([]field, 0, fds.Len())}
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if fd.Kind() == protoreflect.GroupKind {
			return nil
		}
		if fd.IsMap() {
			vf, ok := valueField(fd.MapValue(), visiting)
			if !ok {
				return nil
			}
			p.fields = append(p.fields, field{fd: fd, name: append(strconv.AppendQuote(nil, fd.TextName()), ':'),
				mapKey: fd.MapKey().Kind(), mapVal: &vf})
			continue
		}
		f := field{
			fd:       fd,
			name:     append(strconv.AppendQuote(nil, fd.TextName()), ':'),
			oneof:    fd.ContainingOneof() != nil,
			presence: fd.HasPresence(),
			list:     fd.IsList(),
			kind:     fd.Kind(),
		}
		if !f.resolve(visiting) {
			return nil
		}
		p.fields = append(p.fields, f)
	}
	return p
}

// valueField is the plan of a map's value.
func valueField(fd protoreflect.FieldDescriptor, visiting map[protoreflect.FullName]bool) (field, bool) {
	f := field{fd: fd, kind: fd.Kind()}
	return f, f.resolve(visiting)
}

// resolve fills the sub-plan of a message field; false when not covered.
func (f *field) resolve(visiting map[protoreflect.FullName]bool) bool {
	switch f.fd.Kind() {
	case protoreflect.MessageKind:
		if f.fd.Message().FullName() == timestampName {
			f.ts = true
			return true
		}
		if f.sub = build(f.fd.Message(), visiting); f.sub == nil {
			return false
		}
		plans[f.fd.Message().FullName()] = f.sub
	case protoreflect.EnumKind:
		if f.fd.Enum().FullName() == "google.protobuf.NullValue" {
			return false
		}
	}
	return true
}

func (p *plan) append(buf []byte, m protoreflect.Message) ([]byte, bool) {
	buf = append(buf, '{')
	first := true
	for i := range p.fields {
		f := &p.fields[i]
		has := m.Has(f.fd)
		if !has && f.oneof {
			continue
		}
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = append(buf, f.name...)
		if !has && f.presence {
			buf = append(buf, "null"...)
			continue
		}
		v := m.Get(f.fd)
		var ok bool
		if f.mapVal != nil {
			if buf, ok = f.appendMap(buf, v.Map()); !ok {
				return buf, false
			}
			continue
		}
		if f.list {
			l := v.List()
			buf = append(buf, '[')
			for j := 0; j < l.Len(); j++ {
				if j > 0 {
					buf = append(buf, ',')
				}
				if buf, ok = f.value(buf, l.Get(j)); !ok {
					return buf, false
				}
			}
			buf = append(buf, ']')
			continue
		}
		if buf, ok = f.value(buf, v); !ok {
			return buf, false
		}
	}
	return append(buf, '}'), true
}

// appendMap writes a map with its keys in protojson's order (numeric for
// integers, false before true, lexicographic for strings).
func (f *field) appendMap(buf []byte, mp protoreflect.Map) ([]byte, bool) {
	keys := make([]protoreflect.MapKey, 0, mp.Len())
	mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
		keys = append(keys, k)
		return true
	})
	slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
		switch f.mapKey {
		case protoreflect.BoolKind:
			return cmpBool(a.Bool(), b.Bool())
		case protoreflect.StringKind:
			return strings.Compare(a.String(), b.String())
		case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
			return cmp.Compare(a.Uint(), b.Uint())
		}
		return cmp.Compare(a.Int(), b.Int())
	})
	buf = append(buf, '{')
	var ok bool
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		if buf, ok = appendString(buf, k.String()); !ok {
			return buf, false
		}
		buf = append(buf, ':')
		if buf, ok = f.mapVal.value(buf, mp.Get(k)); !ok {
			return buf, false
		}
	}
	return append(buf, '}'), true
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func (f *field) value(buf []byte, v protoreflect.Value) ([]byte, bool) {
	switch f.kind {
	case protoreflect.BoolKind:
		return strconv.AppendBool(buf, v.Bool()), true
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return strconv.AppendInt(buf, v.Int(), 10), true
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return strconv.AppendUint(buf, v.Uint(), 10), true
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		buf = append(buf, '"')
		return append(strconv.AppendInt(buf, v.Int(), 10), '"'), true
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		buf = append(buf, '"')
		return append(strconv.AppendUint(buf, v.Uint(), 10), '"'), true
	case protoreflect.FloatKind:
		return appendFloat(buf, v.Float(), 32), true
	case protoreflect.DoubleKind:
		return appendFloat(buf, v.Float(), 64), true
	case protoreflect.StringKind:
		return appendString(buf, v.String())
	case protoreflect.BytesKind:
		b := v.Bytes()
		buf = append(buf, '"')
		buf = base64.StdEncoding.AppendEncode(buf, b)
		return append(buf, '"'), true
	case protoreflect.EnumKind:
		if ev := f.fd.Enum().Values().ByNumber(v.Enum()); ev != nil {
			buf = append(buf, '"')
			buf = append(buf, ev.Name()...)
			return append(buf, '"'), true
		}
		return strconv.AppendInt(buf, int64(v.Enum()), 10), true
	case protoreflect.MessageKind:
		if f.ts {
			return appendTimestamp(buf, v.Message())
		}
		return f.sub.append(buf, v.Message())
	}
	return buf, false
}

// Timestamp range protojson accepts: 0001-01-01 to 9999-12-31.
const (
	minTimestampSeconds = -62135596800
	maxTimestampSeconds = 253402300799
)

// appendTimestamp writes RFC 3339 in UTC with 0, 3, 6 or 9 fractional
// digits, like protojson.
func appendTimestamp(buf []byte, m protoreflect.Message) ([]byte, bool) {
	fds := m.Descriptor().Fields()
	secs := m.Get(fds.ByNumber(1)).Int()
	nanos := m.Get(fds.ByNumber(2)).Int()
	if secs < minTimestampSeconds || secs > maxTimestampSeconds || nanos < 0 || nanos >= 1e9 {
		return buf, false
	}
	buf = append(buf, '"')
	buf = time.Unix(secs, 0).UTC().AppendFormat(buf, "2006-01-02T15:04:05")
	if nanos != 0 {
		var frac [10]byte
		s := strconv.AppendInt(frac[:0], 1e9+nanos, 10)[1:] // 9 digits
		switch {
		case nanos%1e6 == 0:
			s = s[:3]
		case nanos%1e3 == 0:
			s = s[:6]
		}
		buf = append(buf, '.')
		buf = append(buf, s...)
	}
	return append(buf, 'Z', '"'), true
}

// appendFloat formats like protojson (encoding/json's number format, NaN
// and infinities as strings).
func appendFloat(buf []byte, n float64, bits int) []byte {
	switch {
	case math.IsNaN(n):
		return append(buf, `"NaN"`...)
	case math.IsInf(n, 1):
		return append(buf, `"Infinity"`...)
	case math.IsInf(n, -1):
		return append(buf, `"-Infinity"`...)
	}
	format := byte('f')
	if abs := math.Abs(n); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	buf = strconv.AppendFloat(buf, n, format, -1, bits)
	if format == 'e' {
		k := len(buf)
		if k >= 4 && buf[k-4] == 'e' && buf[k-3] == '-' && buf[k-2] == '0' {
			buf[k-2] = buf[k-1]
			buf = buf[:k-1]
		}
	}
	return buf
}

// appendString quotes s like protojson: escapes only '"', '\' and control
// characters; invalid UTF-8 is not covered (protojson reports it).
func appendString(buf []byte, s string) ([]byte, bool) {
	buf = append(buf, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				return buf, false
			}
			i += n
			continue
		}
		if c >= ' ' && c != '"' && c != '\\' {
			i++
			continue
		}
		buf = append(buf, s[start:i]...)
		switch c {
		case '"', '\\':
			buf = append(buf, '\\', c)
		case '\b':
			buf = append(buf, '\\', 'b')
		case '\f':
			buf = append(buf, '\\', 'f')
		case '\n':
			buf = append(buf, '\\', 'n')
		case '\r':
			buf = append(buf, '\\', 'r')
		case '\t':
			buf = append(buf, '\\', 't')
		default:
			buf = append(buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	buf = append(buf, s[start:]...)
	return append(buf, '"'), true
}

const hex = "0123456789abcdef"
