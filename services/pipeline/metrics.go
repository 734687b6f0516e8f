package pipeline

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/store"
)

// deadLetterReasons are the reason codes the pipeline dead-letters with
// (the part of a reason before ":"; docs/ERRORS.md).
var deadLetterReasons = []string{"unknown_sensor", "invalid_value"}

// opsMetrics answer the operator's questions about the pipeline: how far
// behind the devices it is, how long the store takes, what it refuses.
type opsMetrics struct {
	applyLag    prometheus.Histogram
	storeWrite  prometheus.Histogram
	deadLetters *prometheus.CounterVec
}

func newOpsMetrics(reg prometheus.Registerer) *opsMetrics {
	m := &opsMetrics{
		applyLag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iot_pipeline_apply_lag_seconds",
			Help:    "Time from a gateway receiving a reading (just before its acknowledgement) to the store accepting it, per reading.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		storeWrite: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "iot_store_write_seconds",
			Help:    "Latency of one store write (a bus batch of readings) by the pipeline.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "iot_pipeline_dead_letters_total",
			Help: "Readings the pipeline dead-lettered, by reason code (unknown_sensor, invalid_value).",
		}, []string{"reason"}),
	}
	for _, r := range deadLetterReasons {
		m.deadLetters.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.applyLag, m.storeWrite, m.deadLetters)
	}
	return m
}

// deadLettered counts a dead letter by the code of its reason.
func (m *opsMetrics) deadLettered(reason string) {
	code, _, _ := strings.Cut(reason, ":")
	if code != "unknown_sensor" && code != "invalid_value" {
		code = "other" // bounded, whatever a future reason says
	}
	m.deadLetters.WithLabelValues(code).Inc()
}

// stored observes a successful store write that started at start.
func (m *opsMetrics) stored(rs []store.Reading, start, now time.Time) {
	m.storeWrite.Observe(now.Sub(start).Seconds())
	ns := now.UnixNano()
	for i := range rs {
		if t := rs[i].ReceiveTimeNS; t > 0 && t <= ns {
			m.applyLag.Observe(float64(ns-t) / 1e9)
		}
	}
}
