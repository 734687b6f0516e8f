package registry

import (
	"context"
	"time"
)

// KeyKind names whose key an expiry belongs to.
type KeyKind string

// Key kinds.
const (
	KeyDevice   KeyKind = "device"
	KeyConsumer KeyKind = "consumer"
)

// Keys rotates device and consumer keys together with their expiry.
type Keys interface {
	// RotateKey increments the device's or consumer's key generation and
	// records, in the same transaction, when keys of the new generation
	// expire (zero: never). It returns the new generation.
	RotateKey(ctx context.Context, kind KeyKind, id int64, expiresAt time.Time) (gen int64, err error)
	// KeyExpiry returns when keys of generation gen of the device or
	// consumer expire; zero when they do not (or gen is not current).
	KeyExpiry(ctx context.Context, kind KeyKind, id, gen int64) (time.Time, error)
}

// RefreshToken is a stored user refresh token. Only a hash of the secret is
// kept.
type RefreshToken struct {
	ID     int64
	UserID int64
	// Hash is the SHA-256 of the secret the client holds (hex).
	Hash string
	// UserGen is the user's TokenGen when the token was issued: a password
	// change or role change retires it.
	UserGen   int64
	ExpiresAt time.Time
	CreatedAt time.Time
}

// RefreshTokens stores user refresh tokens.
type RefreshTokens interface {
	// CreateRefreshToken stores t (UserID, Hash, UserGen, ExpiresAt) and
	// drops the user's expired tokens. ErrNotFound when the user is gone.
	CreateRefreshToken(ctx context.Context, t RefreshToken) (RefreshToken, error)
	// TakeRefreshToken deletes the token with hash and returns it, so a
	// token can be used once; ErrNotFound when there is none.
	TakeRefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// RevokeRefreshTokens deletes every refresh token of the user and
	// returns how many there were.
	RevokeRefreshTokens(ctx context.Context, userID int64) (int, error)
}

// AuditEvent is one security-relevant action, kept in the audit log.
type AuditEvent struct {
	ID   int64
	Time time.Time
	// ActorID is the user who acted (0: the platform itself).
	ActorID int64
	// Action is a dotted verb, e.g. "device.key.rotate", "user.create".
	Action string
	// TargetType is "user", "device", "consumer" or "grant".
	TargetType string
	// TargetID is the id of the target (the consumer for grants).
	TargetID int64
	// Details are extra facts, e.g. {"sensor_id":"4"}, {"expire_time":...}.
	Details map[string]string
}

// AuditFilter narrows ListAuditEvents; zero fields match everything.
type AuditFilter struct {
	ActorID    int64
	Action     string
	TargetType string
	TargetID   int64
	// Since and Until bound Time (Since inclusive, Until exclusive).
	Since, Until time.Time
	// BeforeID returns events with a smaller id (paging newest first).
	BeforeID int64
	// Limit is the most events to return (> 0).
	Limit int
}

// AuditLog persists audit events.
type AuditLog interface {
	// AppendAudit stores e (its ID and, when zero, Time are assigned).
	AppendAudit(ctx context.Context, e AuditEvent) (AuditEvent, error)
	// ListAuditEvents returns matching events, newest first.
	ListAuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}
