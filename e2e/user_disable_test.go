package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestUsers_DisableThroughREST disables a user through the REST path of the
// built binary: sign-in with the right password is 403 with a clear message,
// the refresh token is refused at once, the user token within
// --auth-cache-ttl; admins cannot disable themselves; enabling lets the user
// sign in again; the audit log records both.
func TestUsers_DisableThroughREST(t *testing.T) {
	const cacheTTL = 300 * time.Millisecond
	p := Start(t, Options{Args: []string{"--auth-cache-ttl", cacheTTL.String()}})
	admin := p.SignIn("root", p.AdminPassword)
	u := p.Do("POST", "/api/users", admin, map[string]string{"username": "dora", "password": "password1"})
	if u.Status != 200 {
		t.Fatalf("create user: %d %s", u.Status, u.Body)
	}
	id := u.Str("result.id")
	in := p.Do("POST", "/api/users/signin", "", map[string]string{"username": "dora", "password": "password1"})
	if in.Status != 200 {
		t.Fatalf("sign-in: %d %s", in.Status, in.Body)
	}
	if me := p.Do("GET", "/api/me", in.Str("token"), nil); me.Status != 200 {
		t.Fatalf("/api/me before disabling: %d %s", me.Status, me.Body)
	}
	if r := p.Do("POST", "/api/users/"+id+"/disabled", in.Str("token"), map[string]any{"disabled": true}); r.Status != 403 {
		t.Fatalf("a user disabling itself/others: %d %s, want 403", r.Status, r.Body)
	}

	d := p.Do("POST", "/api/users/"+id+"/disabled", admin, map[string]any{"disabled": true})
	if d.Status != 200 || !strings.Contains(string(d.Body), `"disabled":true`) {
		t.Fatalf("disable: %d %s", d.Status, d.Body)
	}
	disabledAt := time.Now()
	again := p.Do("POST", "/api/users/signin", "", map[string]string{"username": "dora", "password": "password1"})
	if again.Status != 403 || !strings.Contains(again.Str("message"), "disabled") {
		t.Fatalf("sign-in of a disabled user: %d %s, want 403 ... disabled", again.Status, again.Body)
	}
	if r := p.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": in.Str("refresh_token")}); r.Status != 401 {
		t.Fatalf("refresh of a disabled user: %d %s, want 401", r.Status, r.Body)
	}
	for {
		me := p.Do("GET", "/api/me", in.Str("token"), nil)
		if me.Status == 401 {
			break
		}
		if time.Since(disabledAt) > cacheTTL+2*time.Second {
			t.Fatalf("user token of a disabled user still accepted after the cache bound: %d %s", me.Status, me.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	list := p.Do("GET", "/api/users", admin, nil)
	if list.Status != 200 || !strings.Contains(string(list.Body), `"username":"dora"`) || !strings.Contains(string(list.Body), `"disabled":true`) {
		t.Fatalf("ListUsers does not show the disabled user: %d %s", list.Status, list.Body)
	}

	me := p.Do("GET", "/api/me", admin, nil)
	if self := p.Do("POST", "/api/users/"+me.Str("result.id")+"/disabled", admin, map[string]any{"disabled": true}); self.Status == 200 ||
		!strings.Contains(self.Str("message"), "themselves") {
		t.Fatalf("an admin disabling itself: %d %s, want failed_precondition", self.Status, self.Body)
	}

	if e := p.Do("POST", "/api/users/"+id+"/disabled", admin, map[string]any{"disabled": false}); e.Status != 200 {
		t.Fatalf("enable: %d %s", e.Status, e.Body)
	}
	if back := p.Do("POST", "/api/users/signin", "", map[string]string{"username": "dora", "password": "password1"}); back.Status != 200 {
		t.Fatalf("sign-in after enabling: %d %s", back.Status, back.Body)
	}
	audit := p.Do("GET", "/api/audit?target_type=user", admin, nil)
	if audit.Status != 200 || !strings.Contains(string(audit.Body), `"user.disable"`) || !strings.Contains(string(audit.Body), `"user.enable"`) {
		t.Fatalf("audit log: %d %s", audit.Status, audit.Body)
	}
}
