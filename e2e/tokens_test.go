package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestTokens_RefreshExpiryAndAuditThroughREST drives the token lifecycle
// through the REST paths of the built binary: sign-in keeps the original
// {"token": ...} and adds a refresh token; refresh rotates it; an expired
// user token and an expired device key get 401 "token expired" (API and
// HTTP gateway); sign-out revokes; the audit log shows the key rotation to
// admins only.
func TestTokens_RefreshExpiryAndAuditThroughREST(t *testing.T) {
	p := Start(t, Options{Args: []string{"--user-token-ttl", "3s"}})
	in := p.Do("POST", "/api/users/signin", "", map[string]string{"username": "root", "password": p.AdminPassword})
	if in.Status != 200 || in.Str("token") == "" || !strings.HasPrefix(in.Str("refresh_token"), "iotr_") || in.Str("expire_time") == "" ||
		in.Str("refresh_expire_time") == "" {
		t.Fatalf("sign-in answer: %d %s", in.Status, in.Body)
	}
	admin := in.Str("token")

	r := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": in.Str("refresh_token")})
	if r.Status != 200 || r.Str("token") == "" || r.Str("refresh_token") == in.Str("refresh_token") {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}

	d := p.NewDevice(admin, "expiring", "double")
	rot := p.Do("POST", "/api/devices/"+d.ID+"/key/rotate", admin, map[string]string{"ttl": "3s"})
	if rot.Status != 200 || rot.Str("token") == "" || rot.Str("expire_time") == "" {
		t.Fatalf("rotate with ttl: %d %s", rot.Status, rot.Body)
	}
	key := rot.Str("token")
	if s := postReading(t, p, key, "application/json", []byte(`{"sensor_id":`+d.SensorID+`,"value":1}`)); s != 200 {
		t.Fatalf("reading with a fresh expiring key: %d", s)
	}
	audit := p.Do("GET", "/api/audit?action=device.key.rotate", admin, nil)
	if audit.Status != 200 || !strings.Contains(string(audit.Body), `"target_id":"`+d.ID+`"`) || !strings.Contains(string(audit.Body), `"expire_time"`) {
		t.Fatalf("audit log: %d %s", audit.Status, audit.Body)
	}
	user := p.Do("POST", "/api/users", admin, map[string]string{"username": "eve", "password": "password1"})
	if user.Status != 200 {
		t.Fatalf("create user: %d %s", user.Status, user.Body)
	}
	if a := p.Do("GET", "/api/audit", p.SignIn("eve", "password1"), nil); a.Status != 403 {
		t.Fatalf("audit log for a non-admin: %d %s, want 403", a.Status, a.Body)
	}

	time.Sleep(3500 * time.Millisecond)
	me := p.Do("GET", "/api/me", admin, nil)
	if me.Status != 401 || me.Str("message") != "token expired" {
		t.Fatalf("expired user token: %d %s, want 401 token expired", me.Status, me.Body)
	}
	if s := postReading(t, p, key, "application/json", []byte(`{"sensor_id":`+d.SensorID+`,"value":2}`)); s != 401 {
		t.Fatalf("reading with an expired device key: %d, want 401", s)
	}
	// The refresh token outlives the user token: a new user token without the password.
	r2 := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": r.Str("refresh_token")})
	if r2.Status != 200 {
		t.Fatalf("refresh after the user token expired: %d %s", r2.Status, r2.Body)
	}
	if me := p.Do("GET", "/api/me", r2.Str("token"), nil); me.Status != 200 {
		t.Fatalf("refreshed token: %d %s", me.Status, me.Body)
	}
	if k := p.Do("GET", "/api/devices/"+d.ID+"/key", r2.Str("token"), nil); k.Status != 400 && k.Status != 412 {
		t.Fatalf("GetDeviceKey of an expired key: %d %s, want failed_precondition", k.Status, k.Body)
	}
	if out := p.Do("POST", "/api/users/signout", "", map[string]string{"refresh_token": r2.Str("refresh_token")}); out.Status != 200 {
		t.Fatalf("sign out: %d %s", out.Status, out.Body)
	}
	if gone := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": r2.Str("refresh_token")}); gone.Status != 401 {
		t.Fatalf("refresh after sign-out: %d %s, want 401", gone.Status, gone.Body)
	}

	// Replay: a used refresh token presented again ends its session — the
	// newer token stops working too — and the audit log says so.
	in = p.Do("POST", "/api/users/signin", "", map[string]string{"username": "root", "password": p.AdminPassword})
	next := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": in.Str("refresh_token")})
	if next.Status != 200 {
		t.Fatalf("refresh: %d %s", next.Status, next.Body)
	}
	if again := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": in.Str("refresh_token")}); again.Status != 401 {
		t.Fatalf("replaying a used refresh token: %d %s, want 401", again.Status, again.Body)
	}
	if after := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": next.Str("refresh_token")}); after.Status != 401 {
		t.Fatalf("the replayed session's newest refresh token: %d %s, want 401 (session ended)", after.Status, after.Body)
	}
	replay := p.Do("GET", "/api/audit?action=user.session.replay", next.Str("token"), nil)
	if replay.Status != 200 || !strings.Contains(string(replay.Body), `"first_used"`) {
		t.Fatalf("audit log of the replay: %d %s", replay.Status, replay.Body)
	}
}
