package limits

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Streams caps the long-lived streams (Subscribe, IngestStream, WebSocket
// and MQTT connections) one caller may hold at once. A nil *Streams is
// unlimited.
type Streams struct {
	max     int
	mu      sync.Mutex
	n       map[string]int
	refused *prometheus.CounterVec
}

// NewStreams returns a cap of max streams per caller (≤ 0: unlimited, nil);
// reg registers its metric (nil: unregistered).
func NewStreams(max int, reg prometheus.Registerer) *Streams {
	if max <= 0 {
		return nil
	}
	s := &Streams{max: max, n: map[string]int{}, refused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "iot_streams_refused_total", Help: "Streams refused because the caller already held the most allowed, by kind (rpc, ws, mqtt).",
	}, []string{"kind"})}
	for _, k := range []string{"rpc", "ws", "mqtt"} { // exported at 0 from the start
		s.refused.WithLabelValues(k)
	}
	if reg != nil {
		reg.MustRegister(s.refused)
	}
	return s
}

// Max returns the cap (0: unlimited).
func (s *Streams) Max() int {
	if s == nil {
		return 0
	}
	return s.max
}

// Caller names a token subject for per-caller limits ("device/12").
func Caller(kind string, id int64) string { return kind + "/" + strconv.FormatInt(id, 10) }

// Acquire takes one stream for caller (e.g. "device/12"); ok is false when
// the caller holds the most allowed. release must be called once the stream
// ends.
func (s *Streams) Acquire(caller, kind string) (release func(), ok bool) {
	if s == nil {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[caller] >= s.max {
		s.refused.WithLabelValues(kind).Inc()
		return nil, false
	}
	s.n[caller]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.n[caller]--; s.n[caller] <= 0 {
				delete(s.n, caller)
			}
		})
	}, true
}
