package ingest

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"sync"

	"google.golang.org/protobuf/proto"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
)

// A reading's identity in the store is (sensor, timestamp, seq); see
// docs/INGEST.md "Identity". seq = ordinal<<seqHashBits | hash of the value,
// where ordinal is the reading's position among the readings of its sensor
// with the same timestamp in the batch the device sent. So:
//   - readings of one sensor sharing an instant in one batch are all kept,
//     ordered as sent;
//   - an exact replay of a batch (device retry, MQTT redelivery, bus
//     redelivery of records that carry their seq) maps onto the same
//     identities and never duplicates;
//   - a different value at an instant already stored is kept beside it,
//     never replacing it.
const (
	seqHashBits = 40
	maxOrdinal  = 1<<(63-seqHashBits) - 1
)

// assignSeq sets the seq of every record of one device batch.
func assignSeq(recs []*busv1.Record) {
	type key struct{ sensor, ts int64 }
	var seen map[key]int64
	if len(recs) > 1 {
		seen = make(map[key]int64, len(recs))
	}
	for _, r := range recs {
		var ord int64
		if seen != nil {
			k := key{r.SensorId, r.TimestampNs}
			ord = seen[k]
			seen[k] = ord + 1
		}
		r.Seq = min(ord, maxOrdinal)<<seqHashBits | valueHash(r)&(1<<seqHashBits-1)
	}
}

// valueHash is a stable hash of a record's coerced value.
func valueHash(r *busv1.Record) int64 {
	h := fnv.New64a()
	var b [9]byte
	switch v := r.Value.(type) {
	case *busv1.Record_DoubleValue:
		b[0] = 1
		binary.LittleEndian.PutUint64(b[1:], math.Float64bits(v.DoubleValue))
		h.Write(b[:])
	case *busv1.Record_LongValue:
		b[0] = 2
		binary.LittleEndian.PutUint64(b[1:], uint64(v.LongValue))
		h.Write(b[:])
	case *busv1.Record_BoolValue:
		b[0] = 3
		if v.BoolValue {
			b[1] = 1
		}
		h.Write(b[:2])
	case *busv1.Record_StringValue:
		h.Write([]byte{4})
		h.Write([]byte(v.StringValue))
	case *busv1.Record_ObjectValue:
		h.Write([]byte{5})
		raw, _ := proto.MarshalOptions{Deterministic: true}.Marshal(v.ObjectValue)
		h.Write(raw)
	}
	return int64(h.Sum64() >> 1)
}

// serverClock hands out the instants of readings sent without a timestamp:
// wall time, but never the same nanosecond twice and never going back past
// the last one handed out, so such readings of one sensor get distinct,
// increasing instants across batches and connections of this process. A
// restarted process starts again from wall time, which is past every
// instant the previous one handed out unless it assigned more than a
// billion readings a second or the wall clock was set back.
type serverClock struct {
	mu   sync.Mutex
	last int64
}

// processClock is shared by every ingest service of the process.
var processClock serverClock

// reserve returns the first of n consecutive unused instants at or after
// wall.
func (c *serverClock) reserve(wall int64, n int) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if wall <= c.last {
		wall = c.last + 1
	}
	c.last = wall + int64(n) - 1
	return wall
}
