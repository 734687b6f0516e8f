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
	// SessionID names the chain of refresh tokens one sign-in starts: each
	// refresh hands out the next token of the same session. It is the ID of
	// the session's first token (CreateRefreshToken with SessionID 0 starts
	// a session).
	SessionID int64
	// UsedAt is when the token was traded for the next one (zero: not yet).
	// A used token is kept until the session expires, so that presenting it
	// again is recognised as a replay of a stolen token.
	UsedAt time.Time
}

// RefreshTokens stores user refresh tokens.
type RefreshTokens interface {
	// CreateRefreshToken stores t (UserID, Hash, UserGen, ExpiresAt,
	// SessionID; 0 starts a new session whose ID is the new token's) and
	// drops the user's expired tokens. ErrNotFound when the user is gone.
	CreateRefreshToken(ctx context.Context, t RefreshToken) (RefreshToken, error)
	// UseRefreshToken marks the token with hash used and returns it as it
	// was: UsedAt is zero on its first use and the earlier use's time on any
	// later one (a replay). ErrNotFound when there is none.
	UseRefreshToken(ctx context.Context, hash string) (RefreshToken, error)
	// RevokeRefreshSession deletes every token of the user's session and
	// returns how many there were.
	RevokeRefreshSession(ctx context.Context, userID, sessionID int64) (int, error)
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
