package registrytest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

func testKeyExpiry(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	d := must(r.CreateDevice(ctx, registry.Device{OwnerID: a.ID, Name: "car"}))
	c := must(r.CreateConsumer(ctx, registry.Consumer{OwnerID: a.ID, Name: "job"}))
	if exp := must(r.KeyExpiry(ctx, registry.KeyDevice, d.ID, 0)); !exp.IsZero() {
		t.Fatalf("new device key expires at %v, want never", exp)
	}
	at := time.Now().Add(time.Hour).Truncate(time.Microsecond).UTC()
	gen := must(r.RotateKey(ctx, registry.KeyDevice, d.ID, at))
	if gen != 1 {
		t.Fatalf("RotateKey generation = %d, want 1", gen)
	}
	if got := must(r.GetDevice(ctx, d.ID)); got.KeyGen != 1 {
		t.Fatalf("device KeyGen after RotateKey = %d (a cached row?)", got.KeyGen)
	}
	if exp := must(r.KeyExpiry(ctx, registry.KeyDevice, d.ID, 1)); !exp.Equal(at) {
		t.Fatalf("KeyExpiry = %v, want %v", exp, at)
	}
	if exp := must(r.KeyExpiry(ctx, registry.KeyDevice, d.ID, 0)); !exp.IsZero() {
		t.Fatalf("an old generation inherits the expiry %v", exp)
	}
	// The consumer with the same id space is independent.
	if exp := must(r.KeyExpiry(ctx, registry.KeyConsumer, d.ID, 1)); !exp.IsZero() {
		t.Fatalf("consumer %d sees the device's expiry %v", d.ID, exp)
	}
	// Rotating without an expiry clears it.
	if gen := must(r.RotateKey(ctx, registry.KeyDevice, d.ID, time.Time{})); gen != 2 {
		t.Fatalf("second RotateKey generation = %d", gen)
	}
	if exp := must(r.KeyExpiry(ctx, registry.KeyDevice, d.ID, 2)); !exp.IsZero() {
		t.Fatalf("expiry %v survived a rotation without one", exp)
	}
	if gen := must(r.RotateKey(ctx, registry.KeyConsumer, c.ID, at)); gen != 1 {
		t.Fatalf("consumer RotateKey generation = %d", gen)
	}
	if got := must(r.GetConsumer(ctx, c.ID)); got.KeyGen != 1 {
		t.Fatalf("consumer KeyGen after RotateKey = %d", got.KeyGen)
	}
	if exp := must(r.KeyExpiry(ctx, registry.KeyConsumer, c.ID, 1)); !exp.Equal(at) {
		t.Fatalf("consumer KeyExpiry = %v, want %v", exp, at)
	}
	_, err := r.RotateKey(ctx, registry.KeyDevice, 999999, at)
	wantErr(t, err, registry.ErrNotFound)
}

func testRefreshTokens(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	a := user(t, r, "alice", registry.RoleUser)
	b := user(t, r, "bob", registry.RoleUser)
	exp := time.Now().Add(time.Hour).Truncate(time.Microsecond).UTC()
	t1 := must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: a.ID, Hash: "h1", UserGen: 3, ExpiresAt: exp}))
	if t1.ID == 0 || t1.UserID != a.ID || t1.UserGen != 3 || !t1.ExpiresAt.Equal(exp) || t1.CreatedAt.IsZero() {
		t.Fatalf("created %+v", t1)
	}
	_, err := r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: b.ID, Hash: "h1", ExpiresAt: exp})
	wantErr(t, err, registry.ErrAlreadyExists)
	_, err = r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: 999999, Hash: "hx", ExpiresAt: exp})
	wantErr(t, err, registry.ErrNotFound)

	if t1.SessionID != t1.ID || !t1.UsedAt.IsZero() {
		t.Fatalf("a first token starts its own session, unused: %+v", t1)
	}
	got := must(r.UseRefreshToken(ctx, "h1"))
	if got.ID != t1.ID || got.UserID != a.ID || got.UserGen != 3 || !got.ExpiresAt.Equal(exp) || got.SessionID != t1.ID || !got.UsedAt.IsZero() {
		t.Fatalf("first use %+v, want %+v unused", got, t1)
	}
	again := must(r.UseRefreshToken(ctx, "h1"))
	if again.ID != t1.ID || again.UsedAt.IsZero() || time.Since(again.UsedAt) > time.Minute {
		t.Fatalf("second use %+v: want the token with the first use's time (a replay)", again)
	}
	_, err = r.UseRefreshToken(ctx, "nope")
	wantErr(t, err, registry.ErrNotFound)
	// The next token of the session, and another session; revoking the
	// session deletes its tokens, used or not, and nothing else.
	t2 := must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: a.ID, Hash: "h1b", UserGen: 3, ExpiresAt: exp, SessionID: t1.SessionID}))
	if t2.SessionID != t1.SessionID {
		t.Fatalf("next token of the session: %+v", t2)
	}
	other := must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: a.ID, Hash: "h1c", UserGen: 3, ExpiresAt: exp}))
	if other.SessionID != other.ID || other.SessionID == t1.SessionID {
		t.Fatalf("a new session: %+v", other)
	}
	if n := must(r.RevokeRefreshSession(ctx, a.ID, t1.SessionID)); n != 2 {
		t.Fatalf("revoked %d tokens of the session, want 2 (one used, one not)", n)
	}
	if n := must(r.RevokeRefreshSession(ctx, b.ID, other.SessionID)); n != 0 {
		t.Fatalf("another user's revocation deleted %d of alice's tokens", n)
	}
	for _, h := range []string{"h1", "h1b"} {
		_, err = r.UseRefreshToken(ctx, h)
		wantErr(t, err, registry.ErrNotFound)
	}
	if got := must(r.UseRefreshToken(ctx, "h1c")); got.ID != other.ID || !got.UsedAt.IsZero() {
		t.Fatalf("the other session's token: %+v", got)
	}

	// Expired tokens of the user are dropped when a new one is stored.
	must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: a.ID, Hash: "old", ExpiresAt: time.Now().Add(-time.Minute)}))
	must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: a.ID, Hash: "h2", ExpiresAt: exp}))
	_, err = r.UseRefreshToken(ctx, "old")
	wantErr(t, err, registry.ErrNotFound)

	must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: a.ID, Hash: "h3", ExpiresAt: exp}))
	must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: b.ID, Hash: "hb", ExpiresAt: exp}))
	if n := must(r.RevokeRefreshTokens(ctx, a.ID)); n != 3 { // h1c (used), h2, h3
		t.Fatalf("revoked %d tokens, want 3", n)
	}
	_, err = r.UseRefreshToken(ctx, "h3")
	wantErr(t, err, registry.ErrNotFound)
	// Deleting a user deletes its tokens.
	must(r.CreateRefreshToken(ctx, registry.RefreshToken{UserID: b.ID, Hash: "hb2", ExpiresAt: exp}))
	if err := r.DeleteUser(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"hb", "hb2"} {
		_, err = r.UseRefreshToken(ctx, h)
		wantErr(t, err, registry.ErrNotFound)
	}
}

func testAuditLog(t *testing.T, r registry.Registry) {
	ctx := context.Background()
	t0 := time.Now().Add(-time.Hour).Truncate(time.Microsecond).UTC()
	var ids []int64
	for i := range 10 {
		e := registry.AuditEvent{Time: t0.Add(time.Duration(i) * time.Minute), ActorID: int64(1 + i%2), Action: "device.key.rotate",
			TargetType: "device", TargetID: int64(100 + i%3), Details: map[string]string{"n": fmt.Sprint(i)}}
		if i%5 == 0 {
			e.Action, e.TargetType = "user.create", "user"
		}
		got := must(r.AppendAudit(ctx, e))
		if got.ID == 0 || !got.Time.Equal(e.Time) {
			t.Fatalf("appended %+v", got)
		}
		ids = append(ids, got.ID)
	}
	now := must(r.AppendAudit(ctx, registry.AuditEvent{Action: "grant.create", TargetType: "grant", TargetID: 7}))
	if now.Time.IsZero() || time.Since(now.Time) > time.Minute {
		t.Fatalf("AppendAudit without a time stored %v", now.Time)
	}

	all := must(r.ListAuditEvents(ctx, registry.AuditFilter{Limit: 100}))
	if len(all) != 11 || all[0].ID != now.ID || all[10].ID != ids[0] {
		t.Fatalf("ListAuditEvents = %d events, want 11 newest first", len(all))
	}
	if e := all[10]; e.ActorID != 1 || e.Action != "user.create" || e.TargetType != "user" || e.TargetID != 100 || e.Details["n"] != "0" {
		t.Fatalf("oldest event = %+v", e)
	}
	count := func(f registry.AuditFilter) int {
		f.Limit = 100
		return len(must(r.ListAuditEvents(ctx, f)))
	}
	for name, c := range map[string]struct {
		f    registry.AuditFilter
		want int
	}{
		"actor":       {registry.AuditFilter{ActorID: 2}, 5},
		"action":      {registry.AuditFilter{Action: "user.create"}, 2},
		"target type": {registry.AuditFilter{TargetType: "device"}, 8},
		"target":      {registry.AuditFilter{TargetType: "device", TargetID: 101}, 3},
		"since":       {registry.AuditFilter{Since: t0.Add(5 * time.Minute)}, 6},
		"until":       {registry.AuditFilter{Until: t0.Add(5 * time.Minute)}, 5},
		"window":      {registry.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(4 * time.Minute)}, 2},
		"nothing":     {registry.AuditFilter{Action: "nope"}, 0},
	} {
		if got := count(c.f); got != c.want {
			t.Errorf("%s: %d events, want %d", name, got, c.want)
		}
	}
	// Paging newest first.
	var seen []int64
	f := registry.AuditFilter{Limit: 4}
	for {
		page := must(r.ListAuditEvents(ctx, f))
		for _, e := range page {
			seen = append(seen, e.ID)
		}
		if len(page) < f.Limit {
			break
		}
		f.BeforeID = page[len(page)-1].ID
	}
	if len(seen) != 11 {
		t.Fatalf("paged through %d events, want 11", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Fatalf("pages not newest first: %v", seen)
		}
	}
}
