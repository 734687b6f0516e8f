package command

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// Edges are the device edges a session can be on.
const (
	EdgeHTTP = "http"
	EdgeWS   = "ws"
	EdgeMQTT = "mqtt"
	EdgeGRPC = "grpc"
)

// Edge is what every device edge (MQTT, WebSocket, HTTP long-poll, gRPC)
// needs of the command service (Service): a session per connected device,
// and the device's acknowledgements, answers and reported attributes.
type Edge interface {
	Attach(device int64, edge string, ready bool) *Session
	AttachFunc(device int64, edge string, ready bool, deliver DeliverFunc) *Session
	Sent(ctx context.Context, sess *Session, c registry.Command) bool
	Ack(ctx context.Context, device, id int64, how string) error
	Respond(ctx context.Context, device, id int64, success bool, result []byte, msg string) error
	Report(ctx context.Context, device int64, doc []byte) error
	Seen(device int64)
}

var _ Edge = (*Service)(nil)

// Session is one connection (or long-poll) of a device in this process.
// Commands for the device reach the edge in order, either on Commands()
// (Attach) or through its DeliverFunc (AttachFunc); the edge marks each
// Sent before writing it, and the device's acknowledgements and answers go
// to Service.Ack and Service.Respond.
type Session struct {
	Device int64
	Edge   string
	Since  time.Time

	hub  *hub
	out  chan registry.Command // nil with a deliver func
	done chan struct{}
	once sync.Once
	// deliver writes commands to the device (nil: they go to out).
	// deliverMu is held while it runs and by Close, which sets closed:
	// no deliver runs once Close has returned.
	deliver   DeliverFunc
	deliverMu sync.Mutex
	closed    bool
	// ready and inflight are guarded by hub.mu: ready sessions receive
	// commands; inflight are the ids pushed to this session.
	ready    bool
	inflight map[int64]bool
}

// DeliverFunc writes one command to the device of s and reports whether
// the connection is still good. It runs on the device's dispatcher, one
// command at a time, in order, and never once s.Close has returned; it must
// not call s.Close itself, and it must return within a bounded time (the
// device's other commands wait for it; other devices do not).
//
// Like a reader of Commands(), it re-checks the device's credentials,
// calls Service.Sent and writes the command only when Sent reports true
// (returning true when it does not). False means the connection failed
// (the edge closes it): the session is no longer ready, and this command
// and the rest stay pending for the device's other or next session.
type DeliverFunc func(s *Session, c registry.Command) bool

// Commands delivers the commands to write to the device, in order (nil
// for a session attached with AttachFunc).
func (s *Session) Commands() <-chan registry.Command { return s.out }

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Ready makes the session receive commands (MQTT: once the device
// subscribed to its command topic).
func (s *Session) Ready() {
	s.hub.mu.Lock()
	s.ready = true
	s.hub.mu.Unlock()
	s.hub.kick(s.Device)
}

// Close ends the session; commands pushed to it and not yet sent stay
// queued, commands sent and not yet acknowledged are sent again on the
// device's next session. With a deliver func, Close waits for a delivery
// under way (so the deliver func must not call it), and none starts after
// it.
func (s *Session) Close() {
	s.once.Do(func() {
		s.deliverMu.Lock()
		s.closed = true
		s.deliverMu.Unlock()
		close(s.done)
		s.hub.detach(s)
	})
}

// send hands c to the session's deliver func (false: the session is closed
// or its connection failed).
func (s *Session) send(c registry.Command) bool {
	s.deliverMu.Lock()
	defer s.deliverMu.Unlock()
	return !s.closed && s.deliver(s, c)
}

// hub tracks the sessions of this process and pushes pending commands to
// them, one dispatcher per device at a time.
type hub struct {
	log   *slog.Logger
	store registry.Commands
	now   func() time.Time

	mu      sync.Mutex
	devices map[int64]*deviceSessions
	// edges counts, per edge, the devices with at least one session on it.
	perEdge map[[2]any]int

	connected *prometheus.GaugeVec
	// stateQ holds the connection writes runState has yet to apply, in
	// order; stateWake tells it there are some. A gateway's reader calls
	// detach, so queueing must not wait on the registry: it waits only
	// when maxStateQueue writes are pending (stateRoom).
	stateMu   sync.Mutex
	stateRoom sync.Cond
	stateQ    []func(context.Context)
	stateWake chan struct{}
	seen      sync.Map // device → time.Time of the last recorded touch
	// touched holds the devices seen since the last flush of last-seen
	// times, with the earliest time (runState writes them together).
	touchMu sync.Mutex
	touched map[int64]time.Time
}

type deviceSessions struct {
	sessions []*Session
	running  bool
	again    bool
}

func newHub(log *slog.Logger, store registry.Commands, reg prometheus.Registerer) *hub {
	h := &hub{log: log, store: store, now: time.Now, devices: map[int64]*deviceSessions{}, perEdge: map[[2]any]int{},
		connected: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "iot_devices_connected",
			Help: "Devices with at least one open connection (or long-poll) to this process, by edge."}, []string{"edge"}),
		stateWake: make(chan struct{}, 1), touched: map[int64]time.Time{},
	}
	h.stateRoom.L = &h.stateMu
	for _, e := range []string{EdgeHTTP, EdgeWS, EdgeMQTT, EdgeGRPC} {
		h.connected.WithLabelValues(e).Set(0)
	}
	if reg != nil {
		reg.MustRegister(h.connected)
	}
	return h
}

// runState applies the connection writes in order (a disconnect must not
// overtake its connect) and, every touchFlush, the last-seen times
// gathered meanwhile.
func (h *hub) runState(ctx context.Context) {
	flush := time.NewTicker(touchFlush)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.stateWake:
			h.stateMu.Lock()
			fns := h.stateQ
			h.stateQ = nil
			h.stateRoom.Broadcast()
			h.stateMu.Unlock()
			for _, fn := range fns {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
				fn(fctx)
				cancel()
			}
		case <-flush.C:
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			h.flushTouches(fctx)
			cancel()
		}
	}
}

// touchFlush is how often the last-seen times of the devices seen are
// written, all in one TouchDevices (at a fleet's rate, one write per
// device per touchEvery was a write per reading's worth of registry work).
const touchFlush = time.Second

// flushTouches writes the pending last-seen times, with the earliest of
// them for all (a time is never later than the device's activity).
func (h *hub) flushTouches(ctx context.Context) {
	h.touchMu.Lock()
	pending := h.touched
	if len(pending) == 0 {
		h.touchMu.Unlock()
		return
	}
	h.touched = make(map[int64]time.Time, len(pending))
	h.touchMu.Unlock()
	ids := make([]int64, 0, len(pending))
	var at time.Time
	for id, t := range pending {
		ids = append(ids, id)
		if at.IsZero() || t.Before(at) {
			at = t
		}
	}
	if err := h.store.TouchDevices(ctx, ids, at); err != nil {
		h.log.Debug("record last seen", "devices", len(ids), "err", err)
	}
}

// maxStateQueue bounds the connection writes waiting for runState (two
// per connection at most: a connect and a disconnect storm of every device
// of a full process fits).
const maxStateQueue = 1 << 18

// stateWrite queues a connection write (connect, disconnect) for runState,
// which applies them in order. It does not wait for the registry (a
// gateway's shared reader disconnects clients: a disconnect storm must not
// stall every device's reads), only for room past maxStateQueue.
// Last-seen times do not queue here (touch, flushTouches).
func (h *hub) stateWrite(fn func(context.Context)) {
	h.stateMu.Lock()
	for len(h.stateQ) >= maxStateQueue {
		h.stateRoom.Wait()
	}
	h.stateQ = append(h.stateQ, fn)
	h.stateMu.Unlock()
	select {
	case h.stateWake <- struct{}{}:
	default:
	}
}

// attach opens a session; deliver nil: commands go to its channel.
func (h *hub) attach(device int64, edge string, ready bool, deliver DeliverFunc) *Session {
	s := &Session{Device: device, Edge: edge, Since: h.now(), hub: h, deliver: deliver,
		done: make(chan struct{}), ready: ready, inflight: map[int64]bool{}}
	if deliver == nil {
		s.out = make(chan registry.Command, 1)
	}
	h.mu.Lock()
	d := h.devices[device]
	if d == nil {
		d = &deviceSessions{}
		h.devices[device] = d
	}
	d.sessions = append(d.sessions, s)
	k := [2]any{edge, device}
	h.perEdge[k]++
	if h.perEdge[k] == 1 {
		h.connected.WithLabelValues(edge).Inc()
	}
	h.mu.Unlock()
	at := s.Since
	h.stateWrite(func(ctx context.Context) {
		if err := h.store.DeviceConnected(ctx, device, edge, at); err != nil {
			h.log.Warn("record device connection", "device_id", device, "edge", edge, "err", err)
		}
	})
	if ready {
		h.kick(device)
	}
	return s
}

func (h *hub) detach(s *Session) {
	h.mu.Lock()
	if d := h.devices[s.Device]; d != nil {
		for i, o := range d.sessions {
			if o == s {
				d.sessions = append(d.sessions[:i], d.sessions[i+1:]...)
				break
			}
		}
		if len(d.sessions) == 0 && !d.running {
			delete(h.devices, s.Device)
		}
	}
	k := [2]any{s.Edge, s.Device}
	h.perEdge[k]--
	if h.perEdge[k] <= 0 {
		delete(h.perEdge, k)
		h.connected.WithLabelValues(s.Edge).Dec()
	}
	h.mu.Unlock()
	at := h.now()
	h.stateWrite(func(ctx context.Context) {
		if err := h.store.DeviceDisconnected(ctx, s.Device, at); err != nil {
			h.log.Warn("record device disconnection", "device_id", s.Device, "err", err)
		}
	})
}

// touchEvery bounds how often a device's last-seen time is written.
const touchEvery = 10 * time.Second

// touch records activity of the device, at most every touchEvery (written
// within touchFlush by runState).
func (h *hub) touch(device int64) {
	now := h.now()
	if v, ok := h.seen.Load(device); ok && now.Sub(v.(time.Time)) < touchEvery {
		return
	}
	h.seen.Store(device, now)
	h.touchMu.Lock()
	if _, ok := h.touched[device]; !ok {
		h.touched[device] = now
	}
	h.touchMu.Unlock()
}

// local lists the devices with sessions in this process.
func (h *hub) local() []int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]int64, 0, len(h.devices))
	for id := range h.devices {
		out = append(out, id)
	}
	return out
}

// kick makes the device's dispatcher push its pending commands to its
// newest ready session (a no-op when it has none in this process).
func (h *hub) kick(device int64) {
	h.mu.Lock()
	d := h.devices[device]
	if d == nil || len(d.sessions) == 0 {
		h.mu.Unlock()
		return
	}
	if d.running {
		d.again = true
		h.mu.Unlock()
		return
	}
	d.running = true
	h.mu.Unlock()
	go h.dispatch(device, d)
}

func (h *hub) pick(d *deviceSessions) *Session {
	for i := len(d.sessions) - 1; i >= 0; i-- {
		if d.sessions[i].ready {
			return d.sessions[i]
		}
	}
	return nil
}

func (h *hub) dispatch(device int64, d *deviceSessions) {
	for {
		h.mu.Lock()
		s := h.pick(d)
		h.mu.Unlock()
		failed := s != nil && !h.push(device, s)
		h.mu.Lock()
		if failed {
			// Closed or its connection failed: the device's next
			// newest ready session, if any, takes the commands now.
			s.ready, d.again = false, true
		}
		if !d.again || len(d.sessions) == 0 {
			d.running, d.again = false, false
			if len(d.sessions) == 0 {
				delete(h.devices, device)
			}
			h.mu.Unlock()
			return
		}
		d.again = false
		h.mu.Unlock()
	}
}

// push sends the device's pending commands that s has not had yet, to
// its channel or through its deliver func; false: a command was not
// delivered (the session closed, or its connection failed).
func (h *hub) push(device int64, s *Session) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmds, err := h.store.PendingCommands(ctx, device, h.now(), 64)
	if err != nil {
		h.log.Warn("load pending commands", "device_id", device, "err", err)
		return true
	}
	for _, c := range cmds {
		h.mu.Lock()
		seen := s.inflight[c.ID]
		s.inflight[c.ID] = true
		h.mu.Unlock()
		if seen {
			continue
		}
		if s.deliver != nil {
			if s.send(c) {
				continue
			}
			// Not written (closed, or the connection failed): the
			// command stays queued for another session, or this one
			// when it is ready again.
			h.mu.Lock()
			delete(s.inflight, c.ID)
			h.mu.Unlock()
			return false
		}
		select {
		case s.out <- c:
		case <-s.done:
			return true
		case <-time.After(30 * time.Second):
			// The edge does not take commands (a stuck writer): leave
			// the rest queued for the next kick.
			h.mu.Lock()
			delete(s.inflight, c.ID)
			h.mu.Unlock()
			return true
		}
	}
	return true
}
