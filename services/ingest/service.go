// Package ingest is the one ingest path behind every edge (HTTP, WebSocket,
// MQTT, IngestService): it decodes readings (JSON or protobuf), checks each
// against its sensor (owned by the calling device, value coercible to the
// sensor type), normalises timestamps to nanoseconds, and publishes the batch
// to the bus, returning only once it is durable. Batches are all-or-nothing.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Protocol names the edge a reading arrived on (busv1.Record.protocol).
type Protocol string

// Edges.
const (
	ProtocolHTTP Protocol = "http"
	ProtocolWS   Protocol = "ws"
	ProtocolMQTT Protocol = "mqtt"
	ProtocolGRPC Protocol = "grpc"
)

// SensorGetter is what the ingest path needs from the registry.
type SensorGetter interface {
	GetSensor(ctx context.Context, id int64) (registry.Sensor, error)
}

// Config tunes the service.
type Config struct {
	// PublishTimeout bounds how long a batch may wait for the bus before the
	// edge refuses it (bus.ErrUnavailable).
	PublishTimeout time.Duration
	// SensorCacheTTL bounds how long a sensor lookup is reused.
	SensorCacheTTL time.Duration
	// Sensors, when set, is the sensor cache to use (shared with the
	// pipeline of the same process: one refresh of each sensor instead of
	// two, and the pipeline's Forget of a deleted sensor refuses its
	// readings here at once); nil: a cache of its own.
	Sensors *registry.SensorCache
	// MaxBatch is the most readings one batch may carry.
	MaxBatch int
	// Rate is the default ingest limit of a device in readings per second,
	// shared by all edges (≤ 0: unlimited); Burst is the default bucket size
	// (≤ 0: one second's worth). A device's own IngestRate/IngestBurst in
	// the registry override them.
	Rate  float64
	Burst int64
}

func (c *Config) defaults() {
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.SensorCacheTTL <= 0 {
		c.SensorCacheTTL = registry.DefaultSensorCacheTTL
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 10_000
	}
}

// Service validates, normalises and publishes readings.
type Service struct {
	log     *slog.Logger
	pub     bus.Publisher
	dl      deadletter.Writer
	sensors *registry.SensorCache
	cfg     Config
	m       *metrics
	now     func() time.Time
	limiter *rateLimiter
	// selfBounded: pub bounds its own wait by a timeout no longer than
	// ours (bus.Bounded), so Publish makes no deadline of its own.
	selfBounded bool
}

// New returns the ingest service publishing to pub. dl may be nil (dead
// letters are then only logged and counted). reg registers the metrics
// (nil: unregistered).
func New(log *slog.Logger, cfg Config, sensors SensorGetter, pub bus.Publisher, dl deadletter.Writer, reg prometheus.Registerer) *Service {
	cfg.defaults()
	if cfg.Sensors == nil {
		cfg.Sensors = registry.NewSensorCache(sensors, cfg.SensorCacheTTL)
	}
	devices, _ := sensors.(DeviceGetter)
	b, ok := pub.(bus.Bounded)
	return &Service{
		selfBounded: ok && b.PublishTimeout() <= cfg.PublishTimeout,
		limiter:     newRateLimiter(cfg.Rate, cfg.Burst, devices, cfg.SensorCacheTTL),
		log:         log, pub: pub, dl: dl, cfg: cfg,
		sensors: cfg.Sensors,
		m:       newMetrics(reg),
		now:     time.Now,
	}
}

// IngestPayload decodes payload and ingests it for device; it returns the
// number of accepted readings. Errors: *BatchError for refused batches,
// bus.ErrUnavailable (wrapped) when the bus could not take it in time.
func (s *Service) IngestPayload(ctx context.Context, device int64, p Protocol, f Format, payload []byte) (int, error) {
	rs, err := s.DecodePayload(p, f, payload)
	if err != nil {
		return 0, err
	}
	return s.Ingest(ctx, device, p, rs)
}

// DecodePayload is Decode for an edge: a refused payload is counted in
// iot_ingest_refused_batches_total under protocol p.
func (s *Service) DecodePayload(p Protocol, f Format, payload []byte) ([]Reading, error) {
	rs, err := Decode(f, payload)
	if err != nil {
		s.m.refused(p, err)
	}
	return rs, err
}

// DecodeProto is FromProto for an edge (IngestService), counted like
// DecodePayload.
func (s *Service) DecodeProto(p Protocol, in []*ingestv1.Reading) ([]Reading, error) {
	rs, err := FromProto(in)
	if err != nil {
		s.m.refused(p, err)
	}
	return rs, err
}

// Ingest checks every reading against its sensor and publishes the batch,
// returning once it is durable: Validate, then Publish, the two steps every
// edge goes through (MQTT calls them apart, acking between).
func (s *Service) Ingest(ctx context.Context, device int64, p Protocol, rs []Reading) (int, error) {
	recs, err := s.Validate(ctx, device, p, rs)
	if err != nil {
		return 0, err
	}
	if err := s.Publish(ctx, p, recs); err != nil {
		return 0, err
	}
	return len(recs), nil
}

// validate checks rs for device and builds the bus records (all or
// nothing); Validate (trace.go) is it inside an "ingest.validate" span.
func (s *Service) validate(ctx context.Context, device int64, p Protocol, rs []Reading) ([]*busv1.Record, error) {
	if len(rs) == 0 {
		return nil, malformed(-1, CodeMissingField, "no readings")
	}
	if len(rs) > s.cfg.MaxBatch {
		return nil, &BatchError{Class: ClassTooLarge, Items: []ItemError{{Index: -1, Code: CodeTooLarge,
			Message: fmt.Sprintf("%d readings exceed the batch limit of %d", len(rs), s.cfg.MaxBatch)}}}
	}
	now := s.now()
	if wait := s.limiter.take(ctx, device, len(rs), now); wait > 0 {
		s.m.rateLimited.WithLabelValues(string(p)).Inc()
		return nil, rateLimited(len(rs), wait)
	}
	recv := now.UnixNano()
	untimed := 0
	for i := range rs {
		if !rs[i].HasTime {
			untimed++
		}
	}
	var stamp int64 // next server-assigned instant
	if untimed > 0 {
		stamp = processClock.reserve(recv, untimed)
	}
	var (
		lastID  int64
		last    registry.Sensor
		lastErr error
	)
	recs := make([]busv1.Record, len(rs))
	out := make([]*busv1.Record, len(rs))
	var errs []ItemError
	for i := range rs {
		r := &rs[i]
		if r.SensorID != lastID || i == 0 { // batches usually repeat sensors
			lastID = r.SensorID
			last, lastErr = s.sensors.GetSensor(ctx, r.SensorID)
		}
		sen, err := last, lastErr
		if err != nil {
			if !errors.Is(err, registry.ErrNotFound) {
				return nil, fmt.Errorf("look up sensor %d: %w: %w", r.SensorID, bus.ErrUnavailable, err)
			}
		}
		if err != nil || sen.DeviceID != device {
			errs = append(errs, ItemError{Index: i, Code: CodeUnknownSensor,
				Message: fmt.Sprintf("sensor %d is not a sensor of device %d", r.SensorID, device)})
			continue
		}
		rec := &recs[i]
		rec.DeviceId, rec.SensorId, rec.ReceiveTimeNs, rec.Protocol = device, r.SensorID, recv, string(p)
		if r.HasTime {
			rec.TimestampNs = r.TimeNS
		} else {
			rec.TimestampNs = stamp
			stamp++
		}
		if err := Coerce(r.Value, sen.Type, rec); err != nil {
			errs = append(errs, ItemError{Index: i, Code: CodeInvalidValue, Message: err.Error()})
			continue
		}
		out[i] = rec
	}
	if errs != nil {
		return nil, &BatchError{Class: ClassRejected, Items: errs}
	}
	assignSeq(out)
	return out, nil
}

// Publish hands validated records to the bus and waits (bounded by the
// publish timeout) until they are durable.
func (s *Service) Publish(ctx context.Context, p Protocol, recs []*busv1.Record) error {
	if !s.selfBounded {
		// A timeout context is a timer and a registration with the
		// caller's context per publish: made only when the bus does not
		// bound its own wait.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.cfg.PublishTimeout)
		defer cancel()
	}
	pm := s.m.of(p)
	start := time.Now()
	err := s.pub.Publish(ctx, recs)
	pm.publishSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		pm.unavailable.Add(float64(len(recs)))
		s.log.WarnContext(ctx, "publish failed; readings refused", "protocol", p, "readings", len(recs), "err", err)
		if !errors.Is(err, bus.ErrUnavailable) {
			err = fmt.Errorf("%w: %w", bus.ErrUnavailable, err)
		}
		return fmt.Errorf("publish %d readings: %w", len(recs), err)
	}
	pm.accepted.Add(float64(len(recs)))
	return nil
}

// DeadLetter records a payload refused for reason that its sender cannot be
// told about (MQTT 3.x). It is always logged and counted; the error says
// whether it was also written durably.
func (s *Service) DeadLetter(ctx context.Context, device int64, p Protocol, payload []byte, reason error) error {
	code := "malformed"
	var be *BatchError
	if errors.As(reason, &be) && len(be.Items) > 0 {
		code = be.Items[0].Code
	}
	s.m.deadLetters.WithLabelValues(string(p), code).Inc()
	s.log.WarnContext(ctx, "dead-lettered payload", "device_id", device, "protocol", p, "reason", reason.Error(), "bytes", len(payload))
	if s.dl == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	dl := deadletter.Letter{DeviceID: device, Protocol: string(p), Reason: code + ": " + reason.Error(),
		Payload: append([]byte(nil), payload...), TimeNS: s.now().UnixNano()}
	if err := s.dl.WriteDeadLetters(ctx, []deadletter.Letter{dl}); err != nil {
		s.m.deadLetterFailures.Inc()
		return fmt.Errorf("write dead letter: %w", err)
	}
	return nil
}

type metrics struct {
	readings           *prometheus.CounterVec
	refusedBatches     *prometheus.CounterVec
	publishSeconds     *prometheus.HistogramVec
	deadLetters        *prometheus.CounterVec
	deadLetterFailures prometheus.Counter
	rateLimited        *prometheus.CounterVec
	// byProto holds the per-publish children of the known edges (a
	// WithLabelValues lookup hashes the labels under a lock).
	byProto map[Protocol]*protoMetrics
}

// protoMetrics are one edge's per-publish metrics.
type protoMetrics struct {
	publishSeconds        prometheus.Observer
	accepted, unavailable prometheus.Counter
}

func (m *metrics) of(p Protocol) *protoMetrics {
	if pm := m.byProto[p]; pm != nil {
		return pm
	}
	return m.children(p)
}

func (m *metrics) children(p Protocol) *protoMetrics {
	return &protoMetrics{publishSeconds: m.publishSeconds.WithLabelValues(string(p)),
		accepted: m.readings.WithLabelValues(string(p), "accepted"), unavailable: m.readings.WithLabelValues(string(p), "unavailable")}
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		readings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_ingest_readings_total", Help: "Readings that reached the bus, by edge and result (accepted, unavailable).",
		}, []string{"protocol", "result"}),
		refusedBatches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_ingest_refused_batches_total", Help: "Batches refused before publishing, by edge and class (malformed, rejected, too_large).",
		}, []string{"protocol", "class"}),
		publishSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "iot_ingest_publish_seconds", Help: "Time until a batch was durable on the bus.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
		}, []string{"protocol"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_ingest_dead_letters_total", Help: "Payloads dead-lettered because the sender cannot be told (MQTT 3.x), by reason code.",
		}, []string{"protocol", "reason"}),
		deadLetterFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "iot_ingest_dead_letter_write_failures_total", Help: "Dead letters that could not be written durably.",
		}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_ingest_rate_limited_total", Help: "Batches refused by the per-device ingest rate limit, by edge.",
		}, []string{"protocol"}),
	}
	// Exported at 0 from the start, so rates and alerts see every edge.
	m.byProto = map[Protocol]*protoMetrics{}
	for _, p := range []Protocol{ProtocolHTTP, ProtocolWS, ProtocolMQTT, ProtocolGRPC} {
		m.byProto[p] = m.children(p)
		m.rateLimited.WithLabelValues(string(p))
	}
	if reg != nil {
		reg.MustRegister(m.readings, m.refusedBatches, m.publishSeconds, m.deadLetters, m.deadLetterFailures, m.rateLimited)
	}
	return m
}

func (m *metrics) refused(p Protocol, err error) {
	var be *BatchError
	if !errors.As(err, &be) {
		return
	}
	class := map[Class]string{ClassMalformed: "malformed", ClassRejected: "rejected", ClassTooLarge: "too_large", ClassRateLimited: "rate_limited"}[be.Class]
	m.refusedBatches.WithLabelValues(string(p), class).Inc()
}
