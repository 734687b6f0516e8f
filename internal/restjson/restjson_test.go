package restjson_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/known/timestamppb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	_ "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	_ "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/internal/restjson"
)

var opts = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}

// fill sets random values on m: every scalar, lists of 0-3, one member of
// each oneof (or none), nested messages to depth 3.
func fill(r *rand.Rand, m protoreflect.Message, depth int) {
	fds := m.Descriptor().Fields()
	for i := 0; i < fds.Len(); i++ {
		fd := fds.Get(i)
		if r.IntN(4) == 0 {
			continue // leave unpopulated
		}
		if o := fd.ContainingOneof(); o != nil && m.WhichOneof(o) != nil {
			continue
		}
		switch {
		case fd.IsMap():
			mp := m.Mutable(fd).Map()
			for j := r.IntN(3); j > 0; j-- {
				k := scalar(r, fd.MapKey())
				if fd.MapValue().Kind() == protoreflect.MessageKind {
					v := mp.NewValue()
					if depth > 0 {
						fill(r, v.Message(), depth-1)
					}
					mp.Set(k.MapKey(), v)
				} else {
					mp.Set(k.MapKey(), scalar(r, fd.MapValue()))
				}
			}
		case fd.IsList():
			l := m.Mutable(fd).List()
			for j := r.IntN(4); j > 0; j-- {
				if fd.Kind() == protoreflect.MessageKind {
					v := l.NewElement()
					if depth > 0 {
						fill(r, v.Message(), depth-1)
					}
					l.Append(v)
				} else {
					l.Append(scalar(r, fd))
				}
			}
		case fd.Kind() == protoreflect.MessageKind:
			if fd.Message().FullName() == "google.protobuf.Timestamp" {
				ts := timestamppb.New(randTime(r))
				m.Set(fd, protoreflect.ValueOfMessage(ts.ProtoReflect()))
				continue
			}
			if depth > 0 {
				fill(r, m.Mutable(fd).Message(), depth-1)
			}
		default:
			m.Set(fd, scalar(r, fd))
		}
	}
}

func randTime(r *rand.Rand) timeT {
	secs := r.Int64N(4_000_000_000)
	var nanos int64
	switch r.IntN(4) {
	case 1:
		nanos = r.Int64N(1000) * 1e6
	case 2:
		nanos = r.Int64N(1e6) * 1e3
	case 3:
		nanos = r.Int64N(1e9)
	}
	return unix(secs, nanos)
}

var strs = []string{"", "plain", "quote \" and \\ back", "ctl \x01\x1f\n\t\r\b\f", "ünïcødé ☃ \u2028", "<html>&amp;", "\ufffd valid replacement"}

func scalar(r *rand.Rand, fd protoreflect.FieldDescriptor) protoreflect.Value {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return protoreflect.ValueOfBool(r.IntN(2) == 1)
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(r.Uint32()))
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(r.Uint32())
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(r.Uint64()))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return protoreflect.ValueOfUint64(r.Uint64())
	case protoreflect.FloatKind:
		return protoreflect.ValueOfFloat32(float32(pickFloat(r)))
	case protoreflect.DoubleKind:
		return protoreflect.ValueOfFloat64(pickFloat(r))
	case protoreflect.StringKind:
		return protoreflect.ValueOfString(strs[r.IntN(len(strs))])
	case protoreflect.BytesKind:
		b := make([]byte, r.IntN(10))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return protoreflect.ValueOfBytes(b)
	case protoreflect.EnumKind:
		vals := fd.Enum().Values()
		if r.IntN(5) == 0 {
			return protoreflect.ValueOfEnum(99) // a number without a name
		}
		return protoreflect.ValueOfEnum(vals.Get(r.IntN(vals.Len())).Number())
	}
	panic("unexpected kind " + fd.Kind().String())
}

func pickFloat(r *rand.Rand) float64 {
	switch r.IntN(8) {
	case 0:
		return math.NaN()
	case 1:
		return math.Inf(1 - 2*r.IntN(2))
	case 2:
		return 1e-9 * r.Float64()
	case 3:
		return 1e22 * r.Float64()
	case 4:
		return 0
	}
	return (r.Float64() - 0.5) * 1e6
}

// TestAppend_SameJSONAsProtojson compares the fast path with protojson on
// every message type of the API, randomly filled, as parsed JSON.
func TestAppend_SameJSONAsProtojson(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	covered := 0
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		name := string(mt.Descriptor().FullName())
		if !strings.HasPrefix(name, "iot.") {
			return true
		}
		for i := 0; i < 200; i++ {
			m := mt.New()
			if i > 0 {
				fill(r, m, 3)
			}
			want, werr := opts.Marshal(m.Interface())
			got, ok := restjson.Append(nil, m)
			if !ok {
				continue
			}
			covered++
			if werr != nil {
				t.Fatalf("%s: fast path encoded what protojson refuses (%v): %s", name, werr, got)
			}
			var a, b any
			if err := json.Unmarshal(got, &a); err != nil {
				t.Fatalf("%s: fast path wrote invalid JSON %s: %v", name, got, err)
			}
			if err := json.Unmarshal(want, &b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("%s differs:\nfast:      %s\nprotojson: %s", name, got, want)
			}
		}
		return true
	})
	if covered < 1000 {
		t.Fatalf("only %d messages took the fast path", covered)
	}
}

func TestAppend_CoversTheCoreReads(t *testing.T) {
	for _, m := range []proto.Message{
		&corev1.GetDeviceResponse{Result: &corev1.Device{Id: 1, Name: "d", CreateTime: timestamppb.Now()}},
		&corev1.ListSensorsResponse{Result: []*corev1.Sensor{{Id: 1, DeviceId: 2, Name: "s", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE}}},
	} {
		if _, ok := restjson.Append(nil, m.ProtoReflect()); !ok {
			t.Errorf("%T falls back to protojson", m)
		}
	}
}

func TestAppend_InvalidUTF8FallsBack(t *testing.T) {
	m := &corev1.Device{Name: "bad \xff"}
	if _, ok := restjson.Append(nil, m.ProtoReflect()); ok {
		t.Fatal("invalid UTF-8 took the fast path; protojson refuses it")
	}
	mar := restjson.Marshaler{JSONPb: &runtime.JSONPb{MarshalOptions: opts}}
	if _, err := mar.Marshal(m); err == nil {
		t.Fatal("Marshal of invalid UTF-8 succeeded")
	}
}

func BenchmarkListSensors(b *testing.B) {
	resp := &corev1.ListSensorsResponse{}
	for i := range 10 {
		resp.Result = append(resp.Result, &corev1.Sensor{Id: int64(i), DeviceId: 7, Name: "sensor", Description: "a sensor", Unit: "°C",
			ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE, Path: "/a/b", Mapping: `{"type":"double"}`, CreateTime: timestamppb.Now(), UpdateTime: timestamppb.Now()})
	}
	b.Run("protojson", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_, _ = opts.Marshal(resp)
		}
	})
	b.Run("restjson", func(b *testing.B) {
		b.ReportAllocs()
		mar := restjson.Marshaler{JSONPb: &runtime.JSONPb{MarshalOptions: opts}}
		for b.Loop() {
			_, _ = mar.Marshal(resp)
		}
	})
}

type timeT = time.Time

func unix(s, n int64) time.Time { return time.Unix(s, n) }
