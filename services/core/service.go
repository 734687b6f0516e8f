// Package core implements CoreService: users, devices, sensors, consumers,
// grants and device/consumer keys, on top of a registry.Registry.
package core

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/corev1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Provisioner is told when a sensor appears or disappears, so backends can
// create or delete per-sensor resources (Kafka topics, store indices). A
// failing SensorCreated aborts the creation.
type Provisioner interface {
	SensorCreated(ctx context.Context, s registry.Sensor) error
	SensorDeleted(ctx context.Context, s registry.Sensor) error
}

// Config tunes the service.
type Config struct {
	// UserTokenTTL is the lifetime of SignIn tokens (default
	// DefaultUserTokenTTL).
	UserTokenTTL time.Duration
	// RefreshTokenTTL is how long a session can be refreshed after sign-in
	// (default DefaultRefreshTokenTTL).
	RefreshTokenTTL time.Duration
	// Hash tunes the password KDF; zero uses DefaultHashParams.
	Hash HashParams
	// SignIn bounds the KDF work and throttles failed sign-ins.
	SignIn SignInConfig
	// Metrics registers the service's metrics (nil: unregistered).
	Metrics prometheus.Registerer
}

// Service implements corev1connect.CoreServiceHandler (and the identical
// grpc-gateway server interface).
type Service struct {
	log    *slog.Logger
	reg    registry.Registry
	signer *authn.Signer
	cfg    Config
	prov   []Provisioner
	signIn *signInGuard
}

// New returns the service.
func New(log *slog.Logger, reg registry.Registry, signer *authn.Signer, cfg Config, prov ...Provisioner) *Service {
	if cfg.UserTokenTTL <= 0 {
		cfg.UserTokenTTL = DefaultUserTokenTTL
	}
	if cfg.RefreshTokenTTL <= 0 {
		cfg.RefreshTokenTTL = DefaultRefreshTokenTTL
	}
	if cfg.Hash == (HashParams{}) {
		cfg.Hash = DefaultHashParams
	}
	return &Service{log: log, reg: reg, signer: signer, cfg: cfg, prov: prov, signIn: newSignInGuard(cfg.SignIn, cfg.Metrics)}
}

// The service serves Connect (simple handlers) and grpc-gateway alike.
var (
	_ corev1connect.CoreServiceHandler = (*Service)(nil)
	_ corev1grpc.CoreServiceServer     = (*Service)(nil)
)

// Generations adapts a registry to authn.Generations: the current token
// generation of users, devices and consumers.
type Generations struct{ Reg registry.Registry }

// TokenGeneration implements authn.Generations.
func (g Generations) TokenGeneration(ctx context.Context, kind authn.Kind, id int64) (int64, error) {
	switch kind {
	case authn.KindUser:
		u, err := g.Reg.GetUser(ctx, id)
		return u.TokenGen, err
	case authn.KindDevice:
		d, err := g.Reg.GetDevice(ctx, id)
		return d.KeyGen, err
	case authn.KindConsumer:
		c, err := g.Reg.GetConsumer(ctx, id)
		return c.KeyGen, err
	}
	return 0, fmt.Errorf("unknown token kind %q", kind)
}

// TokenGenerations implements authn.BatchGenerations: devices in one
// registry read when the registry offers it (registry.DeviceAccessReader),
// other subjects (few: users' tokens are short-lived) one by one.
func (g Generations) TokenGenerations(ctx context.Context, kind authn.Kind, ids []int64) (map[int64]int64, error) {
	out := make(map[int64]int64, len(ids))
	if br, ok := g.Reg.(registry.DeviceAccessReader); ok && kind == authn.KindDevice {
		as, err := br.DeviceAccess(ctx, ids)
		for id, a := range as {
			out[id] = a.KeyGen
		}
		return out, err
	}
	for _, id := range ids {
		gen, err := g.TokenGeneration(ctx, kind, id)
		if errors.Is(err, registry.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out[id] = gen
	}
	return out, nil
}

// GenerationsCounted implements authn.CountedGenerations: device
// generations, read by TokenGenerations past the registry's read cache
// (registry.DeviceAccessReader), are covered by the registry's change
// counter (registry.ChangeCounter) when it has both.
func (g Generations) GenerationsCounted(kind authn.Kind) bool {
	_, batch := g.Reg.(registry.DeviceAccessReader)
	_, counted := g.Reg.(registry.ChangeCounter)
	return kind == authn.KindDevice && batch && counted
}

// GenerationChanges implements authn.CountedGenerations: the registry's
// change counter (errors.ErrUnsupported without one: every refresh round
// then reads every generation).
func (g Generations) GenerationChanges(ctx context.Context) (int64, error) {
	cc, ok := g.Reg.(registry.ChangeCounter)
	if !ok {
		return 0, errors.ErrUnsupported
	}
	return cc.Changes(ctx)
}

// errorf returns a Connect error with a message safe to show callers.
func errorf(code connect.Code, format string, args ...any) error {
	return connect.NewError(code, fmt.Errorf(format, args...))
}

// invalid reports a bad field as InvalidArgument naming the field.
func invalid(field, problem string) error {
	return errorf(connect.CodeInvalidArgument, "%s: %s", field, problem)
}

// storeErr maps a registry error to a Connect error; unexpected errors are
// logged and hidden behind "internal error".
func (s *Service) storeErr(ctx context.Context, what string, err error) error {
	var ce *connect.Error
	switch {
	case errors.As(err, &ce): // already an answer (e.g. the KDF pool is busy)
		return ce
	case errors.Is(err, registry.ErrNotFound):
		return errorf(connect.CodeNotFound, "%s not found", what)
	case errors.Is(err, registry.ErrAlreadyExists):
		return errorf(connect.CodeAlreadyExists, "%s with that name already exists", what)
	case errors.Is(err, registry.ErrFailedPrecondition):
		var pe *registry.PreconditionError
		if errors.As(err, &pe) {
			return errorf(connect.CodeFailedPrecondition, "%s", pe.Reason)
		}
		return errorf(connect.CodeFailedPrecondition, "%s cannot be changed that way now", what)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	case storageFull(err):
		s.log.ErrorContext(ctx, "registry storage full", "what", what, "err", err)
		return errorf(connect.CodeUnavailable, "the registry cannot store changes right now (storage full); nothing was changed, retry later")
	}
	s.log.ErrorContext(ctx, "registry failure", "what", what, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

// storageFull reports a registry write that failed because its volume is
// full (SQLite: SQLITE_FULL "database or disk is full"; the OS: ENOSPC;
// PostgreSQL: SQLSTATE 53100 disk_full), which is unavailability, not a bug.
func storageFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "database or disk is full") || strings.Contains(msg, "no space left on device") ||
		strings.Contains(msg, "SQLSTATE 53100")
}

func requireUser(ctx context.Context) (authn.Principal, error) {
	return authn.Require(ctx, authn.KindUser)
}

func requireAdmin(ctx context.Context) (authn.Principal, error) {
	p, err := requireUser(ctx)
	if err == nil && !p.Admin {
		err = errorf(connect.CodePermissionDenied, "admin role required")
	}
	return p, err
}

// owns reports whether p may manage a resource owned by ownerID.
func owns(p authn.Principal, ownerID int64) bool { return p.Admin || p.ID == ownerID }

// denied answers for a resource the caller may not see exactly as for one
// that does not exist, so answers do not reveal what exists.
func denied(what string) error {
	return errorf(connect.CodeNotFound, "%s not found", what)
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

// Pagination: opaque tokens carrying the last id of the previous page.
const (
	defaultPageSize = 100
	maxPageSize     = 1000
)

func page(size int32, token string) (registry.Page, error) {
	p := registry.Page{Limit: int(size)}
	if size < 0 {
		return p, invalid("page_size", "must not be negative")
	}
	if p.Limit == 0 {
		p.Limit = defaultPageSize
	}
	if p.Limit > maxPageSize {
		p.Limit = maxPageSize
	}
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err == nil {
			p.AfterID, err = strconv.ParseInt(string(b), 10, 64)
		}
		if err != nil || p.AfterID < 0 {
			return p, invalid("page_token", "malformed")
		}
	}
	return p, nil
}

// nextToken returns the token of the page after rows when the page was full.
func nextToken(n, limit int, lastID int64) string {
	if n < limit {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(lastID, 10)))
}

// convert maps rows to messages.
func convert[R any, M any](rows []R, conv func(R) M) []M {
	out := make([]M, 0, len(rows))
	for _, r := range rows {
		out = append(out, conv(r))
	}
	return out
}

// toPage converts one page of rows (ordered by id) and computes the next
// page token.
func toPage[R any, M any](rows []R, limit int, id func(R) int64, conv func(R) M) ([]M, string) {
	if len(rows) == 0 {
		return convert(rows, conv), ""
	}
	return convert(rows, conv), nextToken(len(rows), limit, id(rows[len(rows)-1]))
}
