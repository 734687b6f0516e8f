package limits

import (
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Pool is a count of connections shared by several listeners: the
// process-wide budget of file descriptors the device edges may use together.
// A nil *Pool is unlimited.
type Pool struct {
	max int64
	n   atomic.Int64
}

// NewPool returns a pool of max connections (≤ 0: unlimited, nil).
func NewPool(max int) *Pool {
	if max <= 0 {
		return nil
	}
	return &Pool{max: int64(max)}
}

// Max returns the pool size (0: unlimited).
func (p *Pool) Max() int {
	if p == nil {
		return 0
	}
	return int(p.max)
}

func (p *Pool) acquire() bool {
	if p == nil {
		return true
	}
	if p.n.Add(1) > p.max {
		p.n.Add(-1)
		return false
	}
	return true
}

func (p *Pool) release() {
	if p != nil {
		p.n.Add(-1)
	}
}

// FDBudget splits the process's file-descriptor limit (RLIMIT_NOFILE, soft
// limit, which the Go runtime raises to the hard limit at start) between the
// API and the device edges: reserve descriptors (≤ 0: a quarter of the
// limit, at least 256) are kept for the API, the registry, the store and the
// bus; the rest is the edges' shared pool. It returns the limit too.
func FDBudget(reserve int) (nofile, api, edges int) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur == 0 || rl.Cur > 1<<30 {
		rl.Cur = 1 << 20
	}
	nofile = int(rl.Cur)
	if reserve <= 0 {
		reserve = max(nofile/4, 256)
	}
	// Descriptors that are neither API nor edge connections: databases,
	// logs, bus, store, listeners.
	const internal = 64
	edges = max(nofile-reserve, 16)
	api = max(reserve-internal, 16)
	return nofile, api, edges
}

// ListenerConfig tunes a capped listener.
type ListenerConfig struct {
	// Name labels the metrics ("api", "http", "ws", "mqtt").
	Name string
	// MaxConns caps the listener's open connections (≤ 0: only the pool).
	MaxConns int
	// Pool is shared with other listeners (nil: none).
	Pool *Pool
	// FirstReadDeadline, when set, is a read deadline applied to every new
	// connection; the protocol server must clear or replace it once the
	// client has identified itself (MQTT: the CONNECT deadline — mochi sets
	// the keep-alive deadline after CONNECT).
	FirstReadDeadline time.Duration
}

// ListenerMetrics count accepted and refused connections per listener.
type ListenerMetrics struct {
	open    *prometheus.GaugeVec
	refused *prometheus.CounterVec
}

// NewListenerMetrics registers the connection metrics on reg (nil: unregistered).
func NewListenerMetrics(reg prometheus.Registerer) *ListenerMetrics {
	m := &ListenerMetrics{
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iot_listener_open_connections",
			Help: "Open connections per listener."}, []string{"listener"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iot_listener_refused_connections_total",
			Help: "Connections closed on accept because the listener's cap or the shared edge budget was full."}, []string{"listener"}),
	}
	if reg != nil {
		reg.MustRegister(m.open, m.refused)
	}
	return m
}

// Listen wraps ln so that connections beyond the caps are closed as soon as
// they are accepted (instead of waiting in the kernel's backlog, or taking
// the descriptors other listeners need).
func Listen(ln net.Listener, cfg ListenerConfig, m *ListenerMetrics) net.Listener {
	if m == nil {
		m = NewListenerMetrics(nil)
	}
	return &capListener{Listener: ln, cfg: cfg, open: m.open.WithLabelValues(cfg.Name), refused: m.refused.WithLabelValues(cfg.Name)}
}

type capListener struct {
	net.Listener
	cfg     ListenerConfig
	n       atomic.Int64
	open    prometheus.Gauge
	refused prometheus.Counter
}

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			if isEMFILE(err) {
				// Out of descriptors all the same: wait for some to be
				// released instead of failing the server (mochi stops
				// serving on any Accept error).
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return nil, err
		}
		if n := l.n.Add(1); l.cfg.MaxConns > 0 && n > int64(l.cfg.MaxConns) {
			l.n.Add(-1)
			l.refused.Inc()
			c.Close()
			continue
		}
		if !l.cfg.Pool.acquire() {
			l.n.Add(-1)
			l.refused.Inc()
			c.Close()
			continue
		}
		l.open.Inc()
		if l.cfg.FirstReadDeadline > 0 {
			_ = c.SetReadDeadline(time.Now().Add(l.cfg.FirstReadDeadline))
		}
		return &capConn{Conn: c, l: l}, nil
	}
}

func isEMFILE(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

type capConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

// NetConn returns the connection as accepted (like tls.Conn's NetConn): the
// MQTT gateway reads plain TCP connections through epoll.
func (c *capConn) NetConn() net.Conn { return c.Conn }

func (c *capConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.n.Add(-1)
		c.l.cfg.Pool.release()
		c.l.open.Dec()
	})
	return err
}
