package registrysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// RotateKey implements registry.Keys.
func (r *DB) RotateKey(ctx context.Context, kind registry.KeyKind, id int64, expiresAt time.Time) (int64, error) {
	var table string
	var ck cacheKey
	switch kind {
	case registry.KeyDevice:
		table, ck = "devices", cacheKey{keyDevice, id, 0}
	case registry.KeyConsumer:
		table, ck = "consumers", cacheKey{keyConsumer, id, 0}
	default:
		return 0, fmt.Errorf("rotate key: unknown kind %q", kind)
	}
	var gen int64
	err := r.write(ctx, func(w wtx) error {
		if err := w.row(`UPDATE `+table+` SET key_gen = key_gen + 1, updated_at = ? WHERE id = ? RETURNING key_gen`,
			micros(r.now()), id).Scan(&gen); err != nil {
			return err
		}
		if expiresAt.IsZero() {
			_, err := w.exec(`DELETE FROM key_expiry WHERE kind = ? AND subject_id = ?`, string(kind), id)
			return err
		}
		_, err := w.exec(`INSERT INTO key_expiry (kind, subject_id, key_gen, expires_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (kind, subject_id) DO UPDATE SET key_gen = excluded.key_gen, expires_at = excluded.expires_at`,
			string(kind), id, gen, micros(expiresAt))
		return err
	})
	r.cache.Forget(ck)
	return gen, r.wrap("rotate "+string(kind)+" key", err)
}

// KeyExpiry implements registry.Keys.
func (r *DB) KeyExpiry(ctx context.Context, kind registry.KeyKind, id, gen int64) (time.Time, error) {
	var at int64
	err := r.row(ctx, `SELECT expires_at FROM key_expiry WHERE kind = ? AND subject_id = ? AND key_gen = ?`, string(kind), id, gen).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, r.wrap("key expiry", err)
	}
	return fromMicros(at), nil
}

const refreshCols = `id, user_id, token_hash, user_gen, expires_at, created_at, session_id, used_at`

func scanRefresh(row rowScanner) (registry.RefreshToken, error) {
	var t registry.RefreshToken
	var exp, created, used int64
	if err := row.Scan(&t.ID, &t.UserID, &t.Hash, &t.UserGen, &exp, &created, &t.SessionID, &used); err != nil {
		return t, err
	}
	t.ExpiresAt, t.CreatedAt = fromMicros(exp), fromMicros(created)
	if used != 0 {
		t.UsedAt = fromMicros(used)
	}
	return t, nil
}

// CreateRefreshToken implements registry.RefreshTokens.
func (r *DB) CreateRefreshToken(ctx context.Context, t registry.RefreshToken) (registry.RefreshToken, error) {
	now := r.now()
	var out registry.RefreshToken
	err := r.write(ctx, func(w wtx) error {
		var n int
		if err := w.row(`SELECT COUNT(*) FROM users WHERE id = ?`, t.UserID).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return sql.ErrNoRows
		}
		if _, err := w.exec(`DELETE FROM refresh_tokens WHERE user_id = ? AND expires_at <= ?`, t.UserID, micros(now)); err != nil {
			return err
		}
		var err error
		out, err = scanRefresh(w.row(`INSERT INTO refresh_tokens (user_id, token_hash, user_gen, expires_at, created_at, session_id)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING `+refreshCols, t.UserID, t.Hash, t.UserGen, micros(t.ExpiresAt), micros(now), t.SessionID))
		if err != nil || out.SessionID != 0 {
			return err
		}
		// A new session is named after its first token.
		out.SessionID = out.ID
		_, err = w.exec(`UPDATE refresh_tokens SET session_id = id WHERE id = ?`, out.ID)
		return err
	})
	return out, r.wrap("create refresh token", err)
}

// UseRefreshToken implements registry.RefreshTokens.
func (r *DB) UseRefreshToken(ctx context.Context, hash string) (registry.RefreshToken, error) {
	var t registry.RefreshToken
	err := r.write(ctx, func(w wtx) (err error) {
		// The first use wins the conditional update; any other finds the
		// row already used and reads it as it is.
		t, err = scanRefresh(w.row(`UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at = 0 RETURNING `+refreshCols,
			micros(r.now()), hash))
		if err == nil {
			t.UsedAt = time.Time{} // as it was: unused
			return nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		t, err = scanRefresh(w.row(`SELECT `+refreshCols+` FROM refresh_tokens WHERE token_hash = ?`, hash))
		return err
	})
	return t, r.wrap("use refresh token", err)
}

// RevokeRefreshSession implements registry.RefreshTokens.
func (r *DB) RevokeRefreshSession(ctx context.Context, userID, sessionID int64) (int, error) {
	return r.deleteRefresh(ctx, "revoke refresh session", `DELETE FROM refresh_tokens WHERE user_id = ? AND session_id = ?`, userID, sessionID)
}

// RevokeRefreshTokens implements registry.RefreshTokens.
func (r *DB) RevokeRefreshTokens(ctx context.Context, userID int64) (int, error) {
	return r.deleteRefresh(ctx, "revoke refresh tokens", `DELETE FROM refresh_tokens WHERE user_id = ?`, userID)
}

// deleteRefresh runs one DELETE of refresh tokens and returns how many went.
func (r *DB) deleteRefresh(ctx context.Context, op, q string, args ...any) (int, error) {
	var n int64
	err := r.writeOne(ctx, func(w wtx) error {
		res, err := w.exec(q, args...)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	return int(n), r.wrap(op, err)
}

// AppendAudit implements registry.AuditLog.
func (r *DB) AppendAudit(ctx context.Context, e registry.AuditEvent) (registry.AuditEvent, error) {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	e.Time = fromMicros(micros(e.Time))
	details := []byte("{}")
	if len(e.Details) > 0 {
		var err error
		if details, err = json.Marshal(e.Details); err != nil {
			return e, fmt.Errorf("audit details: %w", err)
		}
	}
	err := r.write(ctx, func(w wtx) error {
		return w.row(`INSERT INTO audit_events (time, actor_id, action, target_type, target_id, details)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, micros(e.Time), e.ActorID, e.Action, e.TargetType, e.TargetID, string(details)).Scan(&e.ID)
	})
	return e, r.wrap("append audit event", err)
}

// ListAuditEvents implements registry.AuditLog.
func (r *DB) ListAuditEvents(ctx context.Context, f registry.AuditFilter) ([]registry.AuditEvent, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	if f.ActorID != 0 {
		add("actor_id = ?", f.ActorID)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.TargetType != "" {
		add("target_type = ?", f.TargetType)
	}
	if f.TargetID != 0 {
		add("target_id = ?", f.TargetID)
	}
	if !f.Since.IsZero() {
		add("time >= ?", micros(f.Since))
	}
	if !f.Until.IsZero() {
		add("time < ?", micros(f.Until))
	}
	before := f.BeforeID
	if before <= 0 {
		before = math.MaxInt64
	}
	add("id < ?", before)
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	args = append(args, limit)
	rows, err := r.rows(ctx, `SELECT id, time, actor_id, action, target_type, target_id, details FROM audit_events
		WHERE `+strings.Join(where, " AND ")+` ORDER BY id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, r.wrap("list audit events", err)
	}
	defer rows.Close()
	var out []registry.AuditEvent
	for rows.Next() {
		var e registry.AuditEvent
		var t int64
		var details string
		if err := rows.Scan(&e.ID, &t, &e.ActorID, &e.Action, &e.TargetType, &e.TargetID, &details); err != nil {
			return nil, r.wrap("list audit events", err)
		}
		e.Time = fromMicros(t)
		if details != "" && details != "{}" {
			if err := json.Unmarshal([]byte(details), &e.Details); err != nil {
				return nil, fmt.Errorf("audit event %d details: %w", e.ID, err)
			}
		}
		out = append(out, e)
	}
	return out, r.wrap("list audit events", rows.Err())
}
