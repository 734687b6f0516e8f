// Package pipeline turns bus records into stored, typed readings. It is the
// bus handler: on embedded defaults it applies the write-ahead log behind
// the ack (the log checkpoints only after it returns nil), with the direct
// embedded bus it runs inside Publish, in Kafka mode it runs in a consumer
// group and offsets are committed only after it returns nil.
//
// Records that can never be stored (sensor deleted meanwhile, sensor of
// another device, value type different from the sensor's) are written as
// dead letters with the reason and the batch goes on: a bad record never
// blocks a partition. Transient failures (registry or store unreachable)
// return an error so the batch is delivered again; deterministic ids make
// the replay harmless.
package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protojson"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Sensors is what the pipeline needs from the registry.
type Sensors interface {
	GetSensor(ctx context.Context, id int64) (registry.Sensor, error)
}

// Config tunes the pipeline.
type Config struct {
	// SensorCacheTTL bounds how long a sensor's type and existence are
	// cached (default registry.DefaultSensorCacheTTL): a deleted sensor's
	// readings are dead-lettered at most this long after the deletion.
	SensorCacheTTL time.Duration
	// Sensors, when set, is the sensor cache to use (shared with the ingest
	// path of the same process: one refresh of each sensor instead of two,
	// and a Forget reaches both); nil: a cache of its own.
	Sensors *registry.SensorCache
}

// Pipeline is the bus handler writing to the store.
type Pipeline struct {
	log     *slog.Logger
	sensors *registry.SensorCache
	w       store.Writer
	cfg     Config
	now     func() time.Time

	// observe is told about every stored batch (rule evaluation); nil: none.
	observe func(ctx context.Context, rs []store.Reading) error

	readings *prometheus.CounterVec
	batches  prometheus.Histogram
	ops      *opsMetrics // metrics.go
}

// New returns a pipeline writing to w; metrics go to reg (may be nil).
func New(log *slog.Logger, sensors Sensors, w store.Writer, cfg Config, reg prometheus.Registerer) *Pipeline {
	if cfg.Sensors == nil {
		cfg.Sensors = registry.NewSensorCache(sensors, cfg.SensorCacheTTL)
	}
	p := &Pipeline{
		log: log, sensors: cfg.Sensors, w: w, cfg: cfg, now: time.Now,
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_pipeline_readings_total",
			Help: "Readings handled by the pipeline, by result (stored, dead_lettered).",
		}, []string{"result"}),
		batches: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iot_pipeline_batch_duration_seconds",
			Help:    "Time to validate and durably store one bus batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(p.readings, p.batches)
	}
	p.ops = newOpsMetrics(reg)
	return p
}

// Run consumes sub until ctx is done.
func (p *Pipeline) Run(ctx context.Context, sub bus.Subscriber) error {
	return sub.Subscribe(ctx, p.Handle)
}

// Observe makes fn see every batch once it is durably stored, before the
// batch is acknowledged to the bus: an error from fn redelivers the batch
// (the store's identities make the rewrite harmless). Set it before Run.
func (p *Pipeline) Observe(fn func(ctx context.Context, rs []store.Reading) error) { p.observe = fn }

// Forget drops a sensor from the cache (called when it is deleted in this
// process, so its readings are dead-lettered at once).
func (p *Pipeline) Forget(sensorID int64) { p.sensors.Forget(sensorID) }

// Handle validates recs against the registry and stores them; it is a
// bus.Handler.
func (p *Pipeline) Handle(ctx context.Context, recs []*busv1.Record) error {
	start := p.now()
	rs := make([]store.Reading, 0, len(recs))
	var dls []deadletter.Letter
	for _, rec := range recs {
		r, reason, err := p.convert(ctx, rec)
		if err != nil {
			return err
		}
		if reason != "" {
			dls = append(dls, p.deadLetter(rec, reason))
			continue
		}
		rs = append(rs, r)
	}
	if len(dls) > 0 {
		if err := p.w.WriteDeadLetters(ctx, dls); err != nil {
			return fmt.Errorf("write dead letters: %w", err)
		}
		for _, d := range dls {
			p.ops.deadLettered(d.Reason)
			p.log.WarnContext(ctx, "reading dead-lettered", "device_id", d.DeviceID, "sensor_id", d.SensorID, "reason", d.Reason)
		}
	}
	wstart := p.now()
	if err := p.w.Write(ctx, rs); err != nil {
		return fmt.Errorf("store readings: %w", err)
	}
	p.ops.stored(rs, wstart, p.now())
	if p.observe != nil && len(rs) > 0 {
		if err := p.observe(ctx, rs); err != nil {
			return fmt.Errorf("evaluate rules: %w", err)
		}
	}
	p.readings.WithLabelValues("stored").Add(float64(len(rs)))
	p.readings.WithLabelValues("dead_lettered").Add(float64(len(dls)))
	p.batches.Observe(p.now().Sub(start).Seconds())
	return nil
}

// convert returns the reading, or a dead-letter reason ("<code>: <message>",
// codes of docs/ERRORS.md), or a transient error.
func (p *Pipeline) convert(ctx context.Context, rec *busv1.Record) (store.Reading, string, error) {
	s, missing, err := p.sensor(ctx, rec.GetSensorId())
	if err != nil {
		return store.Reading{}, "", err
	}
	if missing {
		return store.Reading{}, fmt.Sprintf("unknown_sensor: sensor %d does not exist (deleted after the reading was accepted?)", rec.GetSensorId()), nil
	}
	if s.DeviceID != rec.GetDeviceId() {
		return store.Reading{}, fmt.Sprintf("unknown_sensor: sensor %d belongs to device %d, not %d", s.ID, s.DeviceID, rec.GetDeviceId()), nil
	}
	v, err := ValueOf(rec)
	if err != nil {
		return store.Reading{}, "invalid_value: " + err.Error(), nil
	}
	if want := string(s.Type); v.Kind.String() != want {
		return store.Reading{}, fmt.Sprintf("invalid_value: value is %s but sensor %d is declared %s", v.Kind, s.ID, want), nil
	}
	return store.Reading{
		DeviceID: rec.GetDeviceId(), SensorID: rec.GetSensorId(), TimeNS: rec.GetTimestampNs(), Seq: rec.GetSeq(),
		Value: v, ReceiveTimeNS: rec.GetReceiveTimeNs(), Protocol: rec.GetProtocol(),
	}, "", nil
}

// ValueOf returns the typed value of a bus record.
func ValueOf(rec *busv1.Record) (store.Value, error) {
	switch v := rec.GetValue().(type) {
	case *busv1.Record_DoubleValue:
		return store.Value{Kind: store.KindDouble, Double: v.DoubleValue}, nil
	case *busv1.Record_LongValue:
		return store.Value{Kind: store.KindLong, Long: v.LongValue}, nil
	case *busv1.Record_BoolValue:
		return store.Value{Kind: store.KindBool, Bool: v.BoolValue}, nil
	case *busv1.Record_StringValue:
		return store.Value{Kind: store.KindString, Str: v.StringValue}, nil
	case *busv1.Record_ObjectValue:
		b, err := v.ObjectValue.MarshalJSON()
		if err != nil {
			return store.Value{}, fmt.Errorf("object value not encodable: %w", err)
		}
		return store.Value{Kind: store.KindObject, Object: b}, nil
	}
	return store.Value{}, errors.New("record has no value")
}

func (p *Pipeline) sensor(ctx context.Context, id int64) (registry.Sensor, bool, error) {
	s, err := p.sensors.GetSensor(ctx, id)
	missing := errors.Is(err, registry.ErrNotFound)
	if err != nil && !missing {
		return registry.Sensor{}, false, fmt.Errorf("look up sensor %d: %w", id, err)
	}
	return s, missing, nil
}

func (p *Pipeline) deadLetter(rec *busv1.Record, reason string) deadletter.Letter {
	payload, err := protojson.Marshal(rec)
	if err != nil {
		payload = nil
	}
	return deadletter.Letter{
		DeviceID: rec.GetDeviceId(), SensorID: rec.GetSensorId(), Protocol: rec.GetProtocol(),
		Reason: reason, Payload: payload, TimeNS: p.now().UnixNano(), Key: letterKey(rec, reason),
	}
}

// letterKey identifies the dead letter of a record: the record's identity
// (device, sensor, timestamp, seq, receive time, protocol) and the reason.
// A batch retried after a failed store write, or replayed after a crash,
// writes its letters again with the same keys, and the store keeps one.
func letterKey(rec *busv1.Record, reason string) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%d/%d/%d/%d/%d/%s/%s", rec.GetDeviceId(), rec.GetSensorId(), rec.GetTimestampNs(),
		rec.GetSeq(), rec.GetReceiveTimeNs(), rec.GetProtocol(), reason))
	return "p" + hex.EncodeToString(h[:16])
}
