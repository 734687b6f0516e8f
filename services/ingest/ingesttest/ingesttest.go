// Package ingesttest gives gateway tests a complete in-process ingest path:
// a real authn.Verifier over a fresh Ed25519 key, an in-memory sensor table,
// a recording (and blockable) durable sink standing in for the bus, and the
// ingest.Service on top.
package ingesttest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// Sensors is an in-memory ingest.SensorGetter and authn.Generations.
type Sensors struct {
	mu      sync.Mutex
	sensors map[int64]registry.Sensor
	gens    map[int64]int64 // device id → key generation
}

// GetSensor implements ingest.SensorGetter.
func (s *Sensors) GetSensor(_ context.Context, id int64) (registry.Sensor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sen, ok := s.sensors[id]
	if !ok {
		return registry.Sensor{}, fmt.Errorf("sensor %d: %w", id, registry.ErrNotFound)
	}
	return sen, nil
}

// TokenGeneration implements authn.Generations for devices and users.
func (s *Sensors) TokenGeneration(_ context.Context, kind authn.Kind, id int64) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kind != authn.KindDevice {
		return 1, nil // users and consumers: never rotated here
	}
	g, ok := s.gens[id]
	if !ok {
		return 0, registry.ErrNotFound
	}
	return g, nil
}

// Rotate bumps the device's key generation (old tokens stop working).
func (s *Sensors) Rotate(device int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gens[device]++
}

// Sink is the bus and the durable store in one: Publish returns once the
// records are kept, like the embedded bus handing them to the pipeline.
type Sink struct {
	timeout time.Duration
	mu      sync.Mutex
	recs    []*busv1.Record
	blocked chan struct{} // non-nil: handler waits until closed or ctx ends
	dls     []deadletter.Letter
	batches int // Publish calls that stored records
}

func (k *Sink) handle(ctx context.Context, recs []*busv1.Record) error {
	k.mu.Lock()
	b := k.blocked
	k.mu.Unlock()
	if b != nil {
		select {
		case <-b:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.recs = append(k.recs, recs...)
	k.batches++
	return nil
}

// Publish implements bus.Publisher: nil once recs are recorded; an error
// wrapping bus.ErrUnavailable when the sink is blocked past the publish
// timeout or ctx ends.
func (k *Sink) Publish(ctx context.Context, recs []*busv1.Record) error {
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if err := k.handle(ctx, recs); err != nil {
		return fmt.Errorf("test sink: %w: %w", bus.ErrUnavailable, err)
	}
	return nil
}

// Block makes the sink hold every batch until the returned func is called.
func (k *Sink) Block() (unblock func()) {
	ch := make(chan struct{})
	k.mu.Lock()
	k.blocked = ch
	k.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			k.mu.Lock()
			k.blocked = nil
			k.mu.Unlock()
			close(ch)
		})
	}
}

// Records returns what has been durably stored.
func (k *Sink) Records() []*busv1.Record {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]*busv1.Record(nil), k.recs...)
}

// Batches returns how many publishes stored records (each one bus batch).
func (k *Sink) Batches() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.batches
}

// WantInOrder fails t unless the sink holds exactly n records valued 0, 1,
// …, n-1 (long values) in that order: what a client publishing values
// 0..n-1 one after the other must see kept, order included.
func (k *Sink) WantInOrder(t testing.TB, n int) {
	t.Helper()
	recs := k.Records()
	if len(recs) != n {
		t.Fatalf("%d stored, want %d", len(recs), n)
	}
	for i, r := range recs {
		if r.GetLongValue() != int64(i) {
			t.Fatalf("record %d has value %d: order lost", i, r.GetLongValue())
		}
	}
}

// WriteDeadLetters implements deadletter.Writer.
func (k *Sink) WriteDeadLetters(_ context.Context, dls []deadletter.Letter) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.dls = append(k.dls, dls...)
	return nil
}

// DeadLetters returns the dead letters written.
func (k *Sink) DeadLetters() []deadletter.Letter {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]deadletter.Letter(nil), k.dls...)
}

// Env is a complete ingest path for tests.
type Env struct {
	Log      *slog.Logger
	Sensors  *Sensors
	Signer   *authn.Signer
	Verifier *authn.Verifier
	// Bus is the Sink, as the service sees it.
	Bus     bus.Publisher
	Sink    *Sink
	Service *ingest.Service
}

// Fixture ids: device 1 owns sensors 11 (double), 12 (long), 13 (boolean),
// 14 (string), 15 (object); device 2 owns sensor 21 (double).
const (
	DeviceA = 1
	DeviceB = 2

	SensorDouble = 11
	SensorLong   = 12
	SensorBool   = 13
	SensorString = 14
	SensorObject = 15
	SensorOfB    = 21
)

// Options tune New.
type Options struct {
	// PublishTimeout of the service (default 2 s; the bus gets the same).
	PublishTimeout time.Duration
}

// New builds an Env.
func New(t testing.TB, opt Options) *Env {
	t.Helper()
	if opt.PublishTimeout <= 0 {
		opt.PublishTimeout = 2 * time.Second
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := authn.NewKeySet(priv)
	s := &Sensors{sensors: map[int64]registry.Sensor{}, gens: map[int64]int64{DeviceA: 1, DeviceB: 1}}
	for id, typ := range map[int64]registry.ValueType{
		SensorDouble: registry.TypeDouble, SensorLong: registry.TypeLong, SensorBool: registry.TypeBoolean,
		SensorString: registry.TypeString, SensorObject: registry.TypeObject,
	} {
		s.sensors[id] = registry.Sensor{ID: id, DeviceID: DeviceA, Type: typ}
	}
	s.sensors[SensorOfB] = registry.Sensor{ID: SensorOfB, DeviceID: DeviceB, Type: registry.TypeDouble}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e := &Env{
		Log: log, Sensors: s,
		Signer:   authn.NewSigner(keys),
		Verifier: authn.NewVerifier(keys, s, authn.VerifierConfig{CacheTTL: 50 * time.Millisecond}),
		Sink:     &Sink{timeout: opt.PublishTimeout},
	}
	e.Bus = e.Sink
	e.Service = ingest.New(log, ingest.Config{PublishTimeout: opt.PublishTimeout, SensorCacheTTL: 50 * time.Millisecond},
		s, e.Bus, e.Sink, nil)
	return e
}

// Token issues a token of kind for id, shaped like Core issues them: a user
// token expires (15 minutes, as sign-in gives; the verifier refuses user
// tokens without `exp`), device and consumer keys do not.
func (e *Env) Token(t testing.TB, kind authn.Kind, id int64) string {
	t.Helper()
	var ttl time.Duration
	if kind == authn.KindUser {
		ttl = 15 * time.Minute
	}
	tok, err := e.Signer.Issue(authn.Principal{Kind: kind, ID: id}, 1, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// DeviceToken issues a device token for id.
func (e *Env) DeviceToken(t testing.TB, id int64) string { return e.Token(t, authn.KindDevice, id) }
