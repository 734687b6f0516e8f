package core

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/durationpb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
)

// tokenEnv is a service on a fresh SQLite registry with a verifier, an
// admin (root) and a user (alice), both with password "password1".
type tokenEnv struct {
	svc          *Service
	reg          *registrysql.DB
	ver          *authn.Verifier
	admin, alice registry.User
	actx, uctx   context.Context
}

func newTokenEnv(t *testing.T, cfg Config) *tokenEnv {
	t.Helper()
	ctx := context.Background()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(t.TempDir(), "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	keys := authn.NewKeySet(priv)
	cfg.Hash = HashParams{MemoryKiB: 1024, Time: 1, Threads: 1}
	e := &tokenEnv{reg: reg, svc: New(slog.New(slog.NewTextHandler(io.Discard, nil)), reg, authn.NewSigner(keys), cfg)}
	e.ver = authn.NewVerifier(keys, Generations{Reg: reg}, authn.VerifierConfig{CacheTTL: time.Nanosecond})
	if e.admin, err = e.svc.createUser(ctx, "root", "", "password1", registry.RoleAdmin); err != nil {
		t.Fatal(err)
	}
	if e.alice, err = e.svc.createUser(ctx, "alice", "", "password1", registry.RoleUser); err != nil {
		t.Fatal(err)
	}
	e.actx = authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindUser, ID: e.admin.ID, Admin: true})
	e.uctx = authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindUser, ID: e.alice.ID})
	return e
}

func (e *tokenEnv) signIn(t *testing.T, user string) *corev1.SignInResponse {
	t.Helper()
	r, err := e.svc.SignIn(context.Background(), &corev1.SignInRequest{Username: user, Password: "password1"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *tokenEnv) refresh(tok string) (*corev1.RefreshTokenResponse, error) {
	return e.svc.RefreshToken(context.Background(), &corev1.RefreshTokenRequest{RefreshToken: tok})
}

func wantCode(t *testing.T, err error, code connect.Code) {
	t.Helper()
	if connect.CodeOf(err) != code {
		t.Fatalf("err = %v, want %v", err, code)
	}
}

func TestSignIn_ShortLivedUserTokenAndRefreshToken(t *testing.T) {
	e := newTokenEnv(t, Config{})
	r := e.signIn(t, "alice")
	if d := time.Until(r.GetExpireTime().AsTime()); d < 14*time.Minute || d > 15*time.Minute {
		t.Fatalf("user token lives %v, want the 15 min default", d)
	}
	if !strings.HasPrefix(r.GetRefreshToken(), refreshPrefix) || len(r.GetRefreshToken()) < 40 {
		t.Fatalf("refresh token %q", r.GetRefreshToken())
	}
	if d := time.Until(r.GetRefreshExpireTime().AsTime()); d < 167*time.Hour || d > 168*time.Hour {
		t.Fatalf("refresh token lives %v, want 7 days", d)
	}
	p, err := e.ver.Authenticate(context.Background(), r.GetToken())
	if err != nil || p.ID != e.alice.ID || p.Kind != authn.KindUser {
		t.Fatalf("Authenticate(user token) = %+v, %v", p, err)
	}
	// Only a hash is stored.
	if _, err := e.reg.UseRefreshToken(context.Background(), r.GetRefreshToken()); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("the refresh token is stored in clear text (err %v)", err)
	}
}

func TestRefreshToken_RotatesAndWorksOnce(t *testing.T) {
	e := newTokenEnv(t, Config{UserTokenTTL: time.Minute})
	in := e.signIn(t, "alice")
	r1, err := e.refresh(in.GetRefreshToken())
	if err != nil {
		t.Fatal(err)
	}
	if r1.GetRefreshToken() == in.GetRefreshToken() || r1.GetToken() == "" || r1.GetUser().GetId() != e.alice.ID {
		t.Fatalf("refresh answer %v", r1)
	}
	if !r1.GetRefreshExpireTime().AsTime().Equal(in.GetRefreshExpireTime().AsTime().Truncate(time.Microsecond)) {
		t.Fatalf("the session was extended: %v, signed in until %v", r1.GetRefreshExpireTime().AsTime(), in.GetRefreshExpireTime().AsTime())
	}
	if d := time.Until(r1.GetExpireTime().AsTime()); d > time.Minute || d < 50*time.Second {
		t.Fatalf("refreshed user token lives %v, want --user-token-ttl", d)
	}
	if _, err := e.ver.Authenticate(context.Background(), r1.GetToken()); err != nil {
		t.Fatalf("refreshed user token refused: %v", err)
	}
	if _, err := e.refresh(r1.GetRefreshToken()); err != nil {
		t.Fatalf("the rotated refresh token does not work: %v", err)
	}
	_, err = e.refresh(in.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated) // used up (and, replayed, it ends the session: TestRefreshToken_ReplayEndsTheSession)
	_, err = e.refresh("iotr_made-up")
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.refresh("")
	wantCode(t, err, connect.CodeUnauthenticated)
}

func TestRefreshToken_Expired(t *testing.T) {
	e := newTokenEnv(t, Config{RefreshTokenTTL: time.Nanosecond})
	in := e.signIn(t, "alice")
	_, err := e.refresh(in.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)
}

func TestRefreshToken_RetiredByPasswordRoleChangeAndDeletion(t *testing.T) {
	e := newTokenEnv(t, Config{})
	ctx := context.Background()

	in := e.signIn(t, "alice")
	other := e.signIn(t, "alice")
	if _, err := e.svc.ChangePassword(e.uctx, &corev1.ChangePasswordRequest{Id: e.alice.ID, CurrentPassword: "password1", NewPassword: "password2"}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{in.GetRefreshToken(), other.GetRefreshToken()} {
		_, err := e.refresh(tok)
		wantCode(t, err, connect.CodeUnauthenticated)
	}
	if _, err := e.svc.ChangePassword(e.actx, &corev1.ChangePasswordRequest{Id: e.alice.ID, NewPassword: "password1"}); err != nil {
		t.Fatal(err)
	}

	in = e.signIn(t, "alice")
	if _, err := e.svc.UpdateUser(e.actx, &corev1.UpdateUserRequest{Id: e.alice.ID, Role: corev1.Role_ROLE_ADMIN.Enum()}); err != nil {
		t.Fatal(err)
	}
	_, err := e.refresh(in.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated) // the role is in the token

	in = e.signIn(t, "alice")
	if _, err := e.svc.DeleteUser(e.actx, &corev1.DeleteUserRequest{Id: e.alice.ID}); err != nil {
		t.Fatal(err)
	}
	_, err = e.refresh(in.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.reg.UseRefreshToken(ctx, hashRefresh(in.GetRefreshToken()))
	if !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("a deleted user's refresh token is still stored (err %v)", err)
	}
}

func TestSignOut_RevokesRefreshToken(t *testing.T) {
	e := newTokenEnv(t, Config{})
	in := e.signIn(t, "alice")
	for range 2 { // signing out twice is fine
		if _, err := e.svc.SignOut(context.Background(), &corev1.SignOutRequest{RefreshToken: in.GetRefreshToken()}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.refresh(in.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.svc.SignOut(context.Background(), &corev1.SignOutRequest{})
	wantCode(t, err, connect.CodeUnauthenticated)
}

// TestRefreshToken_ReplayEndsTheSession: a refresh token presented again
// after it was traded (someone copied it) ends its whole session — the
// newer token, held by whoever refreshed first, stops working too — and is
// recorded in the audit log; the user's other sessions are untouched.
func TestRefreshToken_ReplayEndsTheSession(t *testing.T) {
	e := newTokenEnv(t, Config{})
	in := e.signIn(t, "alice")
	otherSession := e.signIn(t, "alice")
	r1, err := e.refresh(in.GetRefreshToken()) // the first holder refreshes
	if err != nil {
		t.Fatal(err)
	}
	r2, err := e.refresh(r1.GetRefreshToken()) // and again: a chain of three
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.refresh(in.GetRefreshToken()) // the copy of the first token comes back
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.refresh(r2.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated) // the session is over for the holder of the newest token too
	for _, tok := range []string{in.GetRefreshToken(), r1.GetRefreshToken(), r2.GetRefreshToken()} {
		if _, err := e.reg.UseRefreshToken(context.Background(), hashRefresh(tok)); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("a token of the replayed session is still stored (err %v)", err)
		}
	}
	if _, err := e.refresh(otherSession.GetRefreshToken()); err != nil {
		t.Fatalf("another session of the user was ended too: %v", err)
	}
	ev, err := e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, x := range ev.GetResult() {
		if x.GetAction() == auditRefreshReplay && x.GetTargetId() == e.alice.ID && x.GetDetails()["first_used"] != "" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no %s audit event for alice in %v", auditRefreshReplay, ev.GetResult())
	}
}

// TestSignOut_EndsTheWholeSession: signing out with the session's newest
// token also retires the used ones (a later replay finds nothing), and
// leaves the user's other sessions alone.
func TestSignOut_EndsTheWholeSession(t *testing.T) {
	e := newTokenEnv(t, Config{})
	in := e.signIn(t, "alice")
	other := e.signIn(t, "alice")
	r1, err := e.refresh(in.GetRefreshToken())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.SignOut(context.Background(), &corev1.SignOutRequest{RefreshToken: r1.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{in.GetRefreshToken(), r1.GetRefreshToken()} {
		if _, err := e.reg.UseRefreshToken(context.Background(), hashRefresh(tok)); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("a token of the signed-out session is still stored (err %v)", err)
		}
	}
	if _, err := e.refresh(other.GetRefreshToken()); err != nil {
		t.Fatalf("signing out ended another session: %v", err)
	}
}

func TestKeys_ExpiryChosenAtRotation(t *testing.T) {
	e := newTokenEnv(t, Config{})
	ctx := context.Background()
	d, err := e.svc.CreateDevice(e.uctx, &corev1.CreateDeviceRequest{Name: "car"})
	if err != nil {
		t.Fatal(err)
	}
	id := d.GetResult().GetId()

	// Default: no expiry.
	k, err := e.svc.GetDeviceKey(e.uctx, &corev1.GetDeviceKeyRequest{Id: id})
	if err != nil || k.GetExpireTime() != nil {
		t.Fatalf("new device key: %v, %v; want no expiry", k, err)
	}

	r, err := e.svc.RotateDeviceKey(e.uctx, &corev1.RotateDeviceKeyRequest{Id: id, Ttl: durationpb.New(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	exp := r.GetExpireTime().AsTime()
	if d := time.Until(exp); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("rotated key expires in %v, want 1h", d)
	}
	if _, err := e.ver.Authenticate(ctx, k.GetToken()); !errors.Is(err, authn.ErrInvalidToken) {
		t.Fatalf("the key before the rotation still works: %v", err)
	}
	if p, err := e.ver.Authenticate(ctx, r.GetToken()); err != nil || p.Kind != authn.KindDevice || p.ID != id {
		t.Fatalf("rotated key: %+v, %v", p, err)
	}
	// GetDeviceKey hands out the same expiry, never a key that outlives it.
	k2, err := e.svc.GetDeviceKey(e.uctx, &corev1.GetDeviceKeyRequest{Id: id})
	if err != nil || !k2.GetExpireTime().AsTime().Equal(exp.Truncate(time.Microsecond)) {
		t.Fatalf("GetDeviceKey after a rotation with ttl: %v, %v; want expiry %v", k2, err, exp)
	}

	// Rotating without ttl: no expiry again.
	r, err = e.svc.RotateDeviceKey(e.uctx, &corev1.RotateDeviceKeyRequest{Id: id})
	if err != nil || r.GetExpireTime() != nil {
		t.Fatalf("rotation without ttl: %v, %v", r, err)
	}

	for _, ttl := range []*durationpb.Duration{durationpb.New(-time.Second), durationpb.New(time.Millisecond), durationpb.New(200 * 365 * 24 * time.Hour), {Seconds: 1, Nanos: -5}} {
		_, err := e.svc.RotateDeviceKey(e.uctx, &corev1.RotateDeviceKeyRequest{Id: id, Ttl: ttl})
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "ttl") {
			t.Errorf("ttl %v: err %v, want InvalidArgument naming ttl", ttl, err)
		}
	}

	// Consumers alike.
	c, err := e.svc.CreateConsumer(e.uctx, &corev1.CreateConsumerRequest{Name: "job"})
	if err != nil {
		t.Fatal(err)
	}
	cr, err := e.svc.RotateConsumerKey(e.uctx, &corev1.RotateConsumerKeyRequest{Id: c.GetResult().GetId(), Ttl: durationpb.New(2 * time.Hour)})
	if err != nil || time.Until(cr.GetExpireTime().AsTime()) < 119*time.Minute {
		t.Fatalf("consumer rotation with ttl: %v, %v", cr, err)
	}
	ck, err := e.svc.GetConsumerKey(e.uctx, &corev1.GetConsumerKeyRequest{Id: c.GetResult().GetId()})
	if err != nil || !ck.GetExpireTime().AsTime().Equal(cr.GetExpireTime().AsTime().Truncate(time.Microsecond)) {
		t.Fatalf("GetConsumerKey: %v, %v", ck, err)
	}
	if p, err := e.ver.Authenticate(ctx, ck.GetToken()); err != nil || p.Kind != authn.KindConsumer {
		t.Fatalf("consumer key with expiry: %+v, %v", p, err)
	}
}

// TestKeys_ExpiredKeyRefused waits for a one-second key to expire.
func TestKeys_ExpiredKeyRefused(t *testing.T) {
	e := newTokenEnv(t, Config{})
	d, err := e.svc.CreateDevice(e.uctx, &corev1.CreateDeviceRequest{Name: "car"})
	if err != nil {
		t.Fatal(err)
	}
	r, err := e.svc.RotateDeviceKey(e.uctx, &corev1.RotateDeviceKeyRequest{Id: d.GetResult().GetId(), Ttl: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(r.GetExpireTime().AsTime()) + 100*time.Millisecond)
	_, err = e.ver.Authenticate(context.Background(), r.GetToken())
	if !errors.Is(err, authn.ErrTokenExpired) {
		t.Fatalf("expired device key: err %v, want ErrTokenExpired", err)
	}
	_, err = e.svc.GetDeviceKey(e.uctx, &corev1.GetDeviceKeyRequest{Id: d.GetResult().GetId()})
	if connect.CodeOf(err) != connect.CodeFailedPrecondition || !strings.Contains(err.Error(), "rotate") {
		t.Fatalf("GetDeviceKey of an expired key: %v, want FailedPrecondition saying to rotate", err)
	}
}

func TestAudit_KeyAndAdminActionsRecorded(t *testing.T) {
	e := newTokenEnv(t, Config{})
	ctx := context.Background()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	u, err := e.svc.CreateUser(e.actx, &corev1.CreateUserRequest{Username: "bob", Password: "password1"})
	must(u, err)
	bob := u.GetResult().GetId()
	must(e.svc.UpdateUser(e.actx, &corev1.UpdateUserRequest{Id: bob, Role: corev1.Role_ROLE_ADMIN.Enum()}))
	must(e.svc.ChangePassword(e.actx, &corev1.ChangePasswordRequest{Id: bob, NewPassword: "password2"}))
	must(e.svc.ChangePassword(e.uctx, &corev1.ChangePasswordRequest{Id: e.alice.ID, CurrentPassword: "password1", NewPassword: "password3"}))
	d, err := e.svc.CreateDevice(e.uctx, &corev1.CreateDeviceRequest{Name: "car"})
	must(d, err)
	dev := d.GetResult().GetId()
	sn, err := e.svc.CreateSensor(e.uctx, &corev1.CreateSensorRequest{DeviceId: dev, Name: "t", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE})
	must(sn, err)
	must(e.svc.GetDeviceKey(e.uctx, &corev1.GetDeviceKeyRequest{Id: dev}))
	must(e.svc.RotateDeviceKey(e.uctx, &corev1.RotateDeviceKeyRequest{Id: dev, Ttl: durationpb.New(time.Hour)}))
	c, err := e.svc.CreateConsumer(e.uctx, &corev1.CreateConsumerRequest{Name: "job"})
	must(c, err)
	con := c.GetResult().GetId()
	must(e.svc.GetConsumerKey(e.uctx, &corev1.GetConsumerKeyRequest{Id: con}))
	must(e.svc.RotateConsumerKey(e.uctx, &corev1.RotateConsumerKeyRequest{Id: con}))
	must(e.svc.GrantSensor(e.uctx, &corev1.GrantSensorRequest{ConsumerId: con, SensorId: sn.GetSensor().GetId()}))
	must(e.svc.RevokeSensor(e.uctx, &corev1.RevokeSensorRequest{ConsumerId: con, SensorId: sn.GetSensor().GetId()}))
	must(e.svc.DeleteConsumer(e.uctx, &corev1.DeleteConsumerRequest{Id: con}))
	must(e.svc.DeleteDevice(e.uctx, &corev1.DeleteDeviceRequest{Id: dev}))
	must(e.svc.DeleteUser(e.actx, &corev1.DeleteUserRequest{Id: bob}))

	want := []struct {
		action, targetType string
		target, actor      int64
		detail             string
	}{
		{auditUserCreate, "user", bob, e.admin.ID, "role=user"},
		{auditUserUpdate, "user", bob, e.admin.ID, "role=admin"},
		{auditPasswordReset, "user", bob, e.admin.ID, ""},
		{auditPasswordChange, "user", e.alice.ID, e.alice.ID, ""},
		{auditDeviceKeyIssue, "device", dev, e.alice.ID, "expire_time=never"},
		{auditDeviceKeyRot, "device", dev, e.alice.ID, "expire_time=20"},
		{auditConsumerCreate, "consumer", con, e.alice.ID, "name=job"},
		{auditConsumerKeyIss, "consumer", con, e.alice.ID, "expire_time=never"},
		{auditConsumerKeyRot, "consumer", con, e.alice.ID, "expire_time=never"},
		{auditGrantCreate, "consumer", con, e.alice.ID, "sensor_id="},
		{auditGrantRevoke, "consumer", con, e.alice.ID, "sensor_id="},
		{auditConsumerDelete, "consumer", con, e.alice.ID, ""},
		{auditDeviceDelete, "device", dev, e.alice.ID, ""},
		{auditUserDelete, "user", bob, e.admin.ID, ""},
	}
	got, err := e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{PageSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	evs := got.GetResult()
	if len(evs) != len(want) {
		var names []string
		for _, ev := range evs {
			names = append(names, ev.GetAction())
		}
		t.Fatalf("audit log has %d events %v, want %d", len(evs), names, len(want))
	}
	for i, w := range want {
		ev := evs[len(evs)-1-i] // newest first
		var details []string
		for k, v := range ev.GetDetails() {
			details = append(details, k+"="+v)
		}
		if ev.GetAction() != w.action || ev.GetTargetType() != w.targetType || ev.GetTargetId() != w.target || ev.GetActorId() != w.actor ||
			!strings.Contains(strings.Join(details, ","), w.detail) || ev.GetTime() == nil {
			t.Errorf("event %d = %v, want %+v", i, ev, w)
		}
	}

	// Filters and paging.
	f, err := e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{TargetType: "device", TargetId: dev})
	if err != nil || len(f.GetResult()) != 3 {
		t.Fatalf("device events: %v, %v", f, err)
	}
	f, err = e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{ActorId: e.admin.ID, Action: auditUserDelete})
	if err != nil || len(f.GetResult()) != 1 {
		t.Fatalf("admin deletions: %v, %v", f, err)
	}
	var paged int
	req := &corev1.ListAuditEventsRequest{PageSize: 5}
	for {
		p, err := e.svc.ListAuditEvents(e.actx, req)
		if err != nil {
			t.Fatal(err)
		}
		paged += len(p.GetResult())
		if p.GetNextPageToken() == "" {
			break
		}
		req.PageToken = p.GetNextPageToken()
	}
	if paged != len(want) {
		t.Fatalf("paged through %d events, want %d", paged, len(want))
	}
	_, err = e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{TargetType: "sensor"})
	wantCode(t, err, connect.CodeInvalidArgument)

	// Admins only.
	_, err = e.svc.ListAuditEvents(e.uctx, &corev1.ListAuditEventsRequest{})
	wantCode(t, err, connect.CodePermissionDenied)
	_, err = e.svc.ListAuditEvents(ctx, &corev1.ListAuditEventsRequest{})
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.svc.ListAuditEvents(authn.WithPrincipal(ctx, authn.Principal{Kind: authn.KindDevice, ID: dev}), &corev1.ListAuditEventsRequest{})
	wantCode(t, err, connect.CodePermissionDenied)
}
