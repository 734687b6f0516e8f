package query

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Registry is what the query service needs from the metadata store.
type Registry interface {
	GetSensor(ctx context.Context, id int64) (registry.Sensor, error)
	GetDevice(ctx context.Context, id int64) (registry.Device, error)
	ListDevices(ctx context.Context, f registry.DeviceFilter, p registry.Page) ([]registry.Device, error)
	HasGrant(ctx context.Context, consumerID, sensorID int64) (bool, error)
}

// access says what the caller wants to do with a sensor.
type access int

const (
	readData   access = iota // ranges, aggregates, live stream, search
	readLatest               // latest value only (devices may do this)
)

// authorizer decides who may read which sensor, caching registry answers
// for at most ttl: that is the staleness bound of a revoked grant, a
// deleted sensor or a changed owner.
type authorizer struct {
	reg Registry
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	sensors map[int64]cached[registry.Sensor]
	owners  map[int64]cached[int64]
	grants  map[[2]int64]cached[bool]
}

type cached[V any] struct {
	v     V
	err   error
	until time.Time
}

func newAuthorizer(reg Registry, ttl time.Duration) *authorizer {
	return &authorizer{
		reg: reg, ttl: ttl, now: time.Now,
		sensors: map[int64]cached[registry.Sensor]{},
		owners:  map[int64]cached[int64]{},
		grants:  map[[2]int64]cached[bool]{},
	}
}

// lookup returns m[k] if fresh, else calls fetch and caches the answer
// (not-found answers too; transient errors are not cached).
type freshKey struct{}

// fresh makes the authorizer skip its cache (long-lived streams re-checking).
func fresh(ctx context.Context) context.Context { return context.WithValue(ctx, freshKey{}, true) }

func lookup[K comparable, V any](ctx context.Context, a *authorizer, m map[K]cached[V], k K, fetch func() (V, error)) (V, error) {
	now := a.now()
	a.mu.Lock()
	c, ok := m[k]
	a.mu.Unlock()
	if ok && now.Before(c.until) && ctx.Value(freshKey{}) == nil {
		return c.v, c.err
	}
	v, err := fetch()
	if err == nil || errors.Is(err, registry.ErrNotFound) {
		a.mu.Lock()
		if len(m) > 100_000 {
			clear(m)
		}
		m[k] = cached[V]{v: v, err: err, until: now.Add(a.ttl)}
		a.mu.Unlock()
	}
	return v, err
}

func (a *authorizer) sensor(ctx context.Context, id int64) (registry.Sensor, error) {
	return lookup(ctx, a, a.sensors, id, func() (registry.Sensor, error) { return a.reg.GetSensor(ctx, id) })
}

func (a *authorizer) owner(ctx context.Context, deviceID int64) (int64, error) {
	return lookup(ctx, a, a.owners, deviceID, func() (int64, error) {
		d, err := a.reg.GetDevice(ctx, deviceID)
		return d.OwnerID, err
	})
}

func (a *authorizer) granted(ctx context.Context, consumerID, sensorID int64) (bool, error) {
	return lookup(ctx, a, a.grants, [2]int64{consumerID, sensorID}, func() (bool, error) {
		return a.reg.HasGrant(ctx, consumerID, sensorID)
	})
}

var (
	errUnauthenticated = connect.NewError(connect.CodeUnauthenticated, errors.New("authorization required"))
)

func denied(format string, args ...any) error {
	return connect.NewError(connect.CodePermissionDenied, fmt.Errorf(format, args...))
}

// authorize returns the sensor if the caller in ctx may read it as wanted.
func (a *authorizer) authorize(ctx context.Context, sensorID int64, want access) (registry.Sensor, error) {
	p, ok := authn.FromContext(ctx)
	if !ok {
		return registry.Sensor{}, errUnauthenticated
	}
	s, err := a.sensor(ctx, sensorID)
	if errors.Is(err, registry.ErrNotFound) {
		if p.Kind == authn.KindUser && p.Admin {
			return registry.Sensor{}, connect.NewError(connect.CodeNotFound, fmt.Errorf("sensor %d not found", sensorID))
		}
		// Do not tell strangers which sensor ids exist.
		return registry.Sensor{}, denied("sensor %d is not readable with this token", sensorID)
	}
	if err != nil {
		return registry.Sensor{}, err
	}
	switch p.Kind {
	case authn.KindUser:
		if p.Admin {
			return s, nil
		}
		owner, err := a.owner(ctx, s.DeviceID)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return registry.Sensor{}, err
		}
		if err == nil && owner == p.ID {
			return s, nil
		}
	case authn.KindConsumer:
		ok, err := a.granted(ctx, p.ID, sensorID)
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			return registry.Sensor{}, err
		}
		if ok {
			return s, nil
		}
	case authn.KindDevice:
		if want == readLatest && s.DeviceID == p.ID {
			return s, nil
		}
		if s.DeviceID == p.ID {
			return registry.Sensor{}, denied("device tokens may only read the latest values of their own sensors")
		}
	}
	return registry.Sensor{}, denied("sensor %d is not readable with this token", sensorID)
}
