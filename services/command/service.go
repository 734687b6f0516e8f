// Package command sends commands to devices and keeps their state: the
// durable queue and status history (registry.Commands), the sessions of the
// devices connected to this process (every edge attaches one), the
// dispatcher that pushes pending commands to them, CommandService for people
// and DeviceService for devices on gRPC.
package command

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// Devices is what the service needs of the registry besides the command
// store: the owner of a device.
type Devices interface {
	GetDevice(ctx context.Context, id int64) (registry.Device, error)
}

// Config bounds what callers and devices may make the service hold.
type Config struct {
	// MaxPayload bounds a command payload and a device's answer in bytes
	// (default 64 KiB).
	MaxPayload int
	// MaxAttributes bounds a reported or desired attributes document in
	// bytes (default 16 KiB).
	MaxAttributes int
	// MaxPending bounds the commands of one device that are not final
	// (default 100); more are refused with RESOURCE_EXHAUSTED.
	MaxPending int
	// DefaultTTL is a command's time to live when the caller gives none
	// (default 1 hour); MaxTTL bounds it (default 30 days).
	DefaultTTL, MaxTTL time.Duration
	// MaxWait bounds SendCommand's wait for an answer (default 60 s).
	MaxWait time.Duration
	// Housekeeping is how often expired commands are marked and the queue
	// depth is measured (default 1 s).
	Housekeeping time.Duration
}

func (c *Config) defaults() {
	if c.MaxPayload <= 0 {
		c.MaxPayload = 64 << 10
	}
	if c.MaxAttributes <= 0 {
		c.MaxAttributes = 16 << 10
	}
	if c.MaxPending <= 0 {
		c.MaxPending = 100
	}
	if c.DefaultTTL <= 0 {
		c.DefaultTTL = time.Hour
	}
	if c.MaxTTL <= 0 {
		c.MaxTTL = 30 * 24 * time.Hour
	}
	if c.MaxWait <= 0 {
		c.MaxWait = time.Minute
	}
	if c.Housekeeping <= 0 {
		c.Housekeeping = time.Second
	}
}

// Service is the command and device state service of one process.
type Service struct {
	log     *slog.Logger
	cfg     Config
	store   registry.Commands
	devices Devices
	hub     *hub
	now     func() time.Time

	transitions *prometheus.CounterVec
	queueDepth  prometheus.Gauge

	mu       sync.Mutex
	watchers map[chan int64]struct{}
}

// New returns the service; reg registers its metrics (nil: unregistered).
func New(log *slog.Logger, cfg Config, store registry.Commands, devices Devices, reg prometheus.Registerer) *Service {
	cfg.defaults()
	s := &Service{log: log, cfg: cfg, store: store, devices: devices, now: time.Now,
		hub: newHub(log, store, reg),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iot_commands_total",
			Help: "Command status transitions made by this process, by the status entered (queued, sent, delivered, succeeded, failed, expired, cancelled)."}, []string{"status"}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "iot_commands_queue_depth",
			Help: "Commands that are not final yet (queued, sent or delivered), all devices."}),
		watchers: map[chan int64]struct{}{},
	}
	for _, st := range []registry.CommandStatus{registry.CommandQueued, registry.CommandSent, registry.CommandDelivered,
		registry.CommandSucceeded, registry.CommandFailed, registry.CommandExpired, registry.CommandCancelled} {
		s.transitions.WithLabelValues(string(st))
	}
	if reg != nil {
		reg.MustRegister(s.transitions, s.queueDepth)
	}
	return s
}

// Run keeps the service going until ctx ends: it relays changes of the
// store (this process and, on PostgreSQL, others) to the dispatchers and
// watchers, writes connection state, and expires commands.
func (s *Service) Run(ctx context.Context) error {
	go s.hub.runState(ctx)
	go s.housekeeping(ctx)
	go s.leases(ctx)
	return s.store.WatchChanges(ctx, func(device int64) {
		if device == 0 {
			for _, d := range s.hub.local() {
				s.hub.kick(d)
			}
		} else {
			s.hub.kick(device)
		}
		s.broadcast(device)
	})
}

func (s *Service) housekeeping(ctx context.Context) {
	t := time.NewTicker(s.cfg.Housekeeping)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for {
			cs, err := s.store.ExpireCommands(ctx, s.now(), 500)
			if err != nil {
				if ctx.Err() == nil {
					s.log.Warn("expire commands", "err", err)
				}
				break
			}
			s.transitions.WithLabelValues(string(registry.CommandExpired)).Add(float64(len(cs)))
			if len(cs) < 500 {
				break
			}
		}
		if n, err := s.store.CountPendingCommands(ctx); err == nil {
			s.queueDepth.Set(float64(n))
		}
	}
}

// watch returns a channel receiving the ids of changed devices (0: any).
func (s *Service) watch() (chan int64, func()) {
	ch := make(chan int64, 256)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}
}

func (s *Service) broadcast(device int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ch := range s.watchers {
		select {
		case ch <- device:
		default:
			select {
			case ch <- 0:
			default:
			}
		}
	}
}

// Attach opens a session of the device on edge whose commands arrive on
// Session.Commands(), for an edge that waits for them anyway (the HTTP
// long-poll); ready sessions receive commands at once (MQTT attaches
// unready and calls Ready on SUBSCRIBE).
func (s *Service) Attach(device int64, edge string, ready bool) *Session {
	return s.hub.attach(device, edge, ready, nil)
}

// AttachFunc is Attach for a connection that stays open: the device's
// dispatcher writes each command through deliver, so an idle connection
// holds no goroutine waiting for commands.
func (s *Service) AttachFunc(device int64, edge string, ready bool, deliver DeliverFunc) *Session {
	return s.hub.attach(device, edge, ready, deliver)
}

// Seen records activity of the device (readings, pings), throttled.
func (s *Service) Seen(device int64) { s.hub.touch(device) }

// Errors of the device-side calls, worded for the device.
var (
	ErrUnknownCommand = errors.New("no such command for this device")
	ErrTooLarge       = errors.New("too large")
	ErrNotObject      = errors.New("attributes must be a JSON object")
)

// Sent marks c as sent on the session's edge; it reports false (and the
// edge must not write it) when c is no longer pending (expired, cancelled,
// already answered).
func (s *Service) Sent(ctx context.Context, sess *Session, c registry.Command) bool {
	if !s.now().Before(c.ExpiresAt) {
		return false
	}
	_, err := s.store.UpdateCommand(ctx, c.ID, registry.CommandUpdate{To: registry.CommandSent,
		From: []registry.CommandStatus{registry.CommandQueued, registry.CommandSent}, At: s.now(), Edge: sess.Edge, Detail: "sent on " + sess.Edge})
	if err != nil {
		if !errors.Is(err, registry.ErrFailedPrecondition) {
			s.log.Warn("mark command sent", "command_id", c.ID, "err", err)
		}
		return false
	}
	s.transitions.WithLabelValues(string(registry.CommandSent)).Inc()
	return true
}

// own loads command id and checks it belongs to device.
func (s *Service) own(ctx context.Context, device, id int64) (registry.Command, error) {
	c, err := s.store.GetCommand(ctx, id)
	if errors.Is(err, registry.ErrNotFound) || (err == nil && c.DeviceID != device) {
		return c, fmt.Errorf("command %d: %w", id, ErrUnknownCommand)
	}
	return c, err
}

// Ack records the device's transport acknowledgement of a command
// (delivered). Acknowledging a command twice, or after answering it, is
// harmless.
func (s *Service) Ack(ctx context.Context, device, id int64, how string) error {
	s.hub.touch(device)
	c, err := s.own(ctx, device, id)
	if err != nil {
		return err
	}
	// A queued command may be acknowledged too: a device that learnt its
	// id (a stream that sends at once, a retry) must not be refused.
	if c.Status != registry.CommandSent && c.Status != registry.CommandQueued {
		return nil
	}
	_, err = s.store.UpdateCommand(ctx, id, registry.CommandUpdate{To: registry.CommandDelivered,
		From: []registry.CommandStatus{registry.CommandQueued, registry.CommandSent}, At: s.now(), Detail: how})
	if err == nil {
		s.transitions.WithLabelValues(string(registry.CommandDelivered)).Inc()
	} else if errors.Is(err, registry.ErrFailedPrecondition) {
		return nil
	}
	return err
}

// Respond records the device's answer: succeeded or failed, with a JSON
// result (nil: none) and, for failures, a message.
func (s *Service) Respond(ctx context.Context, device, id int64, success bool, result []byte, msg string) error {
	if len(result) > s.cfg.MaxPayload || len(msg) > 1024 {
		return fmt.Errorf("response: %w (result at most %d bytes, message 1024)", ErrTooLarge, s.cfg.MaxPayload)
	}
	if result != nil && !json.Valid(result) {
		return fmt.Errorf("response result: %w", errNotJSON)
	}
	if err := s.Ack(ctx, device, id, "implied by the response"); err != nil {
		return err
	}
	to := registry.CommandSucceeded
	if !success {
		to = registry.CommandFailed
	}
	_, err := s.store.UpdateCommand(ctx, id, registry.CommandUpdate{To: to,
		From: []registry.CommandStatus{registry.CommandDelivered}, At: s.now(), Detail: msg, Result: result})
	if errors.Is(err, registry.ErrFailedPrecondition) {
		c, _ := s.store.GetCommand(ctx, id)
		return fmt.Errorf("command %d is %s: %w", id, c.Status, err)
	}
	if err == nil {
		s.transitions.WithLabelValues(string(to)).Inc()
	}
	return err
}

// Report stores the device's reported attributes (a JSON object).
func (s *Service) Report(ctx context.Context, device int64, doc []byte) error {
	if len(doc) > s.cfg.MaxAttributes {
		return fmt.Errorf("reported attributes: %w (at most %d bytes)", ErrTooLarge, s.cfg.MaxAttributes)
	}
	var m map[string]any
	if err := json.Unmarshal(doc, &m); err != nil || m == nil {
		return ErrNotObject
	}
	_, err := s.store.SetReportedAttributes(ctx, device, doc, s.now())
	return err
}

// IsDeviceError reports whether err is the device's fault (answered to it)
// rather than the platform's.
func IsDeviceError(err error) bool {
	return errors.Is(err, ErrUnknownCommand) || errors.Is(err, ErrTooLarge) || errors.Is(err, ErrNotObject) ||
		errors.Is(err, registry.ErrFailedPrecondition) || errors.Is(err, errNotJSON)
}

var errNotJSON = errors.New("must be JSON")
