package core

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
)

// TestSetUserDisabled_RefusesSignInTokensAndRefresh disables alice: sign-in
// with the right password is PERMISSION_DENIED with a clear message, her
// access and refresh tokens stop working, enabling her lets her sign in
// again, and both changes are in the audit log.
func TestSetUserDisabled_RefusesSignInTokensAndRefresh(t *testing.T) {
	e := newTokenEnv(t, Config{})
	ctx := context.Background()
	in := e.signIn(t, "alice")
	if _, err := e.ver.Authenticate(ctx, in.GetToken()); err != nil {
		t.Fatal(err)
	}

	_, err := e.svc.SetUserDisabled(e.uctx, &corev1.SetUserDisabledRequest{Id: e.alice.ID, Disabled: true})
	wantCode(t, err, connect.CodePermissionDenied) // admins only
	r, err := e.svc.SetUserDisabled(e.actx, &corev1.SetUserDisabledRequest{Id: e.alice.ID, Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if !r.GetResult().GetDisabled() {
		t.Fatal("the response does not show the user disabled")
	}
	if g, _ := e.svc.GetUser(e.actx, &corev1.GetUserRequest{Id: e.alice.ID}); !g.GetResult().GetDisabled() {
		t.Fatal("GetUser does not show the user disabled")
	}

	_, err = e.svc.SignIn(ctx, &corev1.SignInRequest{Username: "alice", Password: "password1"})
	wantCode(t, err, connect.CodePermissionDenied)
	if got := connectMessage(err); got != errUserDisabled.Error() {
		t.Fatalf("sign-in message %q, want %q", got, errUserDisabled)
	}
	// A wrong password still gets the usual answer: the state is not revealed.
	_, err = e.svc.SignIn(ctx, &corev1.SignInRequest{Username: "alice", Password: "wrong-password"})
	wantCode(t, err, connect.CodeUnauthenticated)
	_, err = e.refresh(in.GetRefreshToken())
	wantCode(t, err, connect.CodeUnauthenticated)
	if _, err := e.ver.Authenticate(ctx, in.GetToken()); err == nil {
		t.Fatal("a disabled user's access token still authenticates")
	}

	if _, err := e.svc.SetUserDisabled(e.actx, &corev1.SetUserDisabledRequest{Id: e.alice.ID}); err != nil {
		t.Fatal(err)
	}
	again := e.signIn(t, "alice")
	if _, err := e.ver.Authenticate(ctx, again.GetToken()); err != nil {
		t.Fatalf("re-enabled user's new token: %v", err)
	}
	if _, err := e.refresh(in.GetRefreshToken()); err == nil {
		t.Fatal("a refresh token retired by disabling works again after enabling")
	}

	ev, err := e.svc.ListAuditEvents(e.actx, &corev1.ListAuditEventsRequest{PageSize: 100, TargetType: "user"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, a := range ev.GetResult() {
		if a.GetTargetId() == e.alice.ID && a.GetActorId() == e.admin.ID {
			actions = append(actions, a.GetAction())
		}
	}
	if len(actions) != 2 || !contains(actions, auditUserDisable) || !contains(actions, auditUserEnable) {
		t.Fatalf("audit actions %v, want %s and %s", actions, auditUserDisable, auditUserEnable)
	}
}

// TestSetUserDisabled_AdminsKeepAccess: an admin cannot disable itself and
// the last enabled admin cannot be disabled (nor deleted once the other
// admin is disabled).
func TestSetUserDisabled_AdminsKeepAccess(t *testing.T) {
	e := newTokenEnv(t, Config{})
	_, err := e.svc.SetUserDisabled(e.actx, &corev1.SetUserDisabledRequest{Id: e.admin.ID, Disabled: true})
	wantCode(t, err, connect.CodeFailedPrecondition)
	if _, err := e.svc.UpdateUser(e.actx, &corev1.UpdateUserRequest{Id: e.alice.ID, Role: corev1.Role_ROLE_ADMIN.Enum()}); err != nil {
		t.Fatal(err)
	}
	// alice (now an admin) disables root: allowed, root was not the last.
	actx := contextAs(e, e.alice.ID, true)
	if _, err := e.svc.SetUserDisabled(actx, &corev1.SetUserDisabledRequest{Id: e.admin.ID, Disabled: true}); err != nil {
		t.Fatal(err)
	}
	// root's token is retired; a fresh admin context for root would still
	// be refused by the verifier. alice is now the last enabled admin.
	_, err = e.svc.SetUserDisabled(e.actx, &corev1.SetUserDisabledRequest{Id: e.alice.ID, Disabled: true})
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = e.svc.UpdateUser(actx, &corev1.UpdateUserRequest{Id: e.alice.ID, Role: corev1.Role_ROLE_USER.Enum()})
	wantCode(t, err, connect.CodeFailedPrecondition)
	_, err = e.svc.DeleteUser(e.actx, &corev1.DeleteUserRequest{Id: e.alice.ID})
	wantCode(t, err, connect.CodeFailedPrecondition)
}

func connectMessage(err error) string {
	if ce, ok := err.(*connect.Error); ok {
		return ce.Message()
	}
	return ""
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func contextAs(_ *tokenEnv, id int64, admin bool) context.Context {
	return authn.WithPrincipal(context.Background(), authn.Principal{Kind: authn.KindUser, ID: id, Admin: admin})
}
