package query

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/cache"
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
// in the platform's one read cache (internal/cache) for at most ttl: that is
// the staleness bound of a revoked grant, a deleted sensor or a changed owner.
type authorizer struct {
	reg Registry

	sensors *cache.Cache[int64, registry.Sensor]
	owners  *cache.Cache[int64, int64]
	grants  *cache.Cache[[2]int64, bool]
}

func newAuthorizer(reg Registry, ttl time.Duration) *authorizer {
	return newAuthorizerClock(reg, ttl, nil)
}

// newAuthorizerClock is newAuthorizer on the clock now (nil: time.Now).
func newAuthorizerClock(reg Registry, ttl time.Duration, now func() time.Time) *authorizer {
	// Not-found answers are cached too; transient errors are not.
	cfg := cache.Config{TTL: ttl, Now: now, KeepError: func(err error) bool { return errors.Is(err, registry.ErrNotFound) }}
	return &authorizer{
		reg:     reg,
		sensors: cache.New[int64, registry.Sensor](cfg),
		owners:  cache.New[int64, int64](cfg),
		grants:  cache.New[[2]int64, bool](cfg),
	}
}

type freshKey struct{}

// fresh makes the authorizer skip its cache (long-lived streams re-checking).
func fresh(ctx context.Context) context.Context { return context.WithValue(ctx, freshKey{}, true) }

// lookup returns c's answer for k, reloading it when ctx asks for a fresh one.
func lookup[K comparable, V any](ctx context.Context, c *cache.Cache[K, V], k K, fetch func() (V, error)) (V, error) {
	if ctx.Value(freshKey{}) != nil {
		c.Forget(k)
	}
	return c.Load(k, fetch)
}

func (a *authorizer) sensor(ctx context.Context, id int64) (registry.Sensor, error) {
	return lookup(ctx, a.sensors, id, func() (registry.Sensor, error) { return a.reg.GetSensor(ctx, id) })
}

func (a *authorizer) owner(ctx context.Context, deviceID int64) (int64, error) {
	return lookup(ctx, a.owners, deviceID, func() (int64, error) {
		d, err := a.reg.GetDevice(ctx, deviceID)
		return d.OwnerID, err
	})
}

func (a *authorizer) granted(ctx context.Context, consumerID, sensorID int64) (bool, error) {
	return lookup(ctx, a.grants, [2]int64{consumerID, sensorID}, func() (bool, error) {
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
