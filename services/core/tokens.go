package core

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Defaults of Config.
const (
	// DefaultUserTokenTTL is the lifetime of user tokens.
	DefaultUserTokenTTL = 15 * time.Minute
	// DefaultRefreshTokenTTL is how long after sign-in a session can be
	// refreshed before the user must sign in again.
	DefaultRefreshTokenTTL = 7 * 24 * time.Hour
	// maxKeyTTL bounds the ttl of device and consumer keys (100 years).
	maxKeyTTL = 100 * 365 * 24 * time.Hour
)

// refreshPrefix marks refresh tokens, so they are recognisable in logs and
// secret scanners and never mistaken for JWTs.
const refreshPrefix = "iotr_"

var errBadRefresh = errors.New("refresh token invalid, expired or revoked")

// hashRefresh is what the registry stores of a refresh token: the secret
// has 256 random bits, so a plain SHA-256 is enough.
func hashRefresh(tok string) string {
	h := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(h[:])
}

// newRefreshToken stores and returns a new refresh token for u, expiring at
// exp, in session (0: a new session).
func (s *Service) newRefreshToken(ctx context.Context, u registry.User, exp time.Time, session int64) (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	tok := refreshPrefix + base64.RawURLEncoding.EncodeToString(b)
	_, err := s.reg.CreateRefreshToken(ctx, registry.RefreshToken{UserID: u.ID, Hash: hashRefresh(tok), UserGen: u.TokenGen, ExpiresAt: exp, SessionID: session})
	return tok, err
}

// issueRefresh adds a new refresh token to a SignIn answer.
func (s *Service) issueRefresh(ctx context.Context, u registry.User, out *corev1.SignInResponse) error {
	exp := time.Now().Add(s.cfg.RefreshTokenTTL)
	tok, err := s.newRefreshToken(ctx, u, exp, 0) // a new session
	if err != nil {
		return s.storeErr(ctx, "refresh token", err)
	}
	out.RefreshToken, out.RefreshExpireTime = tok, timestamppb.New(exp)
	return nil
}

// RefreshToken implements CoreService.RefreshToken. Public: the refresh
// token is the credential. It is used up; the new one belongs to the same
// session and keeps its expiry (RefreshTokenTTL after sign-in). A token that
// was already used coming back means two parties hold it (it was copied):
// the whole session ends, for both of them (refresh-token rotation with
// replay detection, RFC 9700 §4.14.2).
func (s *Service) RefreshToken(ctx context.Context, req *corev1.RefreshTokenRequest) (*corev1.RefreshTokenResponse, error) {
	if req.GetRefreshToken() == "" { // the refresh token is the credential
		return nil, errorf(connect.CodeUnauthenticated, "refresh_token required")
	}
	bad := connect.NewError(connect.CodeUnauthenticated, errBadRefresh)
	old, err := s.reg.UseRefreshToken(ctx, hashRefresh(req.GetRefreshToken()))
	if errors.Is(err, registry.ErrNotFound) {
		return nil, bad
	}
	if err != nil {
		return nil, s.storeErr(ctx, "refresh token", err)
	}
	if !old.UsedAt.IsZero() {
		s.endReplayedSession(ctx, old)
		return nil, bad
	}
	if !time.Now().Before(old.ExpiresAt) {
		return nil, bad
	}
	u, err := s.reg.GetUser(ctx, old.UserID)
	if errors.Is(err, registry.ErrNotFound) || (err == nil && (u.TokenGen != old.UserGen || u.Disabled)) {
		return nil, bad // user deleted, disabled, password or role changed
	}
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	tok, err := s.signer.Issue(authn.Principal{Kind: authn.KindUser, ID: u.ID, Admin: u.Role == registry.RoleAdmin}, u.TokenGen, s.cfg.UserTokenTTL)
	if err != nil {
		return nil, s.storeErr(ctx, "token", err)
	}
	next, err := s.newRefreshToken(ctx, u, old.ExpiresAt, old.SessionID)
	if err != nil {
		return nil, s.storeErr(ctx, "refresh token", err)
	}
	return &corev1.RefreshTokenResponse{Token: tok, ExpireTime: timestamppb.New(time.Now().Add(s.cfg.UserTokenTTL)), User: userPB(u),
		RefreshToken: next, RefreshExpireTime: timestamppb.New(old.ExpiresAt)}, nil
}

// endReplayedSession ends the session of a refresh token presented again
// after its use: every token of the session is deleted, so neither the
// thief nor the user can refresh it any more (the user signs in again; a
// user token already issued lives out its short TTL).
func (s *Service) endReplayedSession(ctx context.Context, t registry.RefreshToken) {
	n, err := s.reg.RevokeRefreshSession(context.WithoutCancel(ctx), t.UserID, t.SessionID)
	if err != nil {
		s.log.ErrorContext(ctx, "replayed refresh token: session not ended", "user_id", t.UserID, "session_id", t.SessionID, "err", err)
		return
	}
	s.log.WarnContext(ctx, "replayed refresh token: session ended", "user_id", t.UserID, "session_id", t.SessionID,
		"used_at", t.UsedAt, "tokens_deleted", n)
	s.audit(ctx, auditRefreshReplay, "user", t.UserID, map[string]string{
		"session_id": strconv.FormatInt(t.SessionID, 10), "first_used": t.UsedAt.UTC().Format(time.RFC3339)})
}

// SignOut implements CoreService.SignOut. Public: the refresh token is the
// credential; it ends the token's whole session. An unknown token is not an
// error (signing out twice is fine).
func (s *Service) SignOut(ctx context.Context, req *corev1.SignOutRequest) (*corev1.SignOutResponse, error) {
	if req.GetRefreshToken() == "" { // the refresh token is the credential
		return nil, errorf(connect.CodeUnauthenticated, "refresh_token required")
	}
	t, err := s.reg.UseRefreshToken(ctx, hashRefresh(req.GetRefreshToken()))
	if errors.Is(err, registry.ErrNotFound) {
		return &corev1.SignOutResponse{}, nil
	}
	if err == nil {
		_, err = s.reg.RevokeRefreshSession(ctx, t.UserID, t.SessionID)
	}
	if err != nil {
		return nil, s.storeErr(ctx, "refresh token", err)
	}
	return &corev1.SignOutResponse{}, nil
}

// keyExpiry validates a key ttl from a rotate request and returns when the
// new key expires (zero: never).
func keyExpiry(ttl *durationpb.Duration) (time.Time, error) {
	if ttl == nil {
		return time.Time{}, nil
	}
	if err := ttl.CheckValid(); err != nil {
		return time.Time{}, invalid("ttl", "malformed duration")
	}
	d := ttl.AsDuration()
	switch {
	case d < 0:
		return time.Time{}, invalid("ttl", "must not be negative")
	case d == 0:
		return time.Time{}, nil
	case d < time.Second:
		return time.Time{}, invalid("ttl", "must be at least 1s")
	case d > maxKeyTTL:
		return time.Time{}, invalid("ttl", "must be at most 100 years")
	}
	return time.Now().Add(d), nil
}

// issueKey signs a device or consumer token of generation gen expiring at
// exp (zero: never). An expired key is not reissued: it must be rotated.
func (s *Service) issueKey(ctx context.Context, kind authn.Kind, id, gen int64, exp time.Time) (string, *timestamppb.Timestamp, error) {
	var ttl time.Duration
	if !exp.IsZero() {
		if ttl = time.Until(exp); ttl <= 0 {
			return "", nil, errorf(connect.CodeFailedPrecondition, "the %s key expired; rotate it to get a new one", kind)
		}
	}
	tok, err := s.signer.Issue(authn.Principal{Kind: kind, ID: id}, gen, ttl)
	if err != nil {
		return "", nil, s.storeErr(ctx, "key", err)
	}
	if exp.IsZero() {
		return tok, nil, nil
	}
	return tok, timestamppb.New(exp), nil
}
