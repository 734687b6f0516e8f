package core

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/limits"
)

// TestSignIn_OversizedCredentialsRefusedBeforeAnyState: a username or
// password no account can have is refused as invalid before the throttles
// remember it (a megabyte username was a megabyte key in the per-account
// backoff map, 100,000 of them allowed) and before the KDF runs.
func TestSignIn_OversizedCredentialsRefusedBeforeAnyState(t *testing.T) {
	e := newTokenEnv(t, Config{})
	ctx := limits.WithClientAddr(context.Background(), "192.0.2.1")
	for i := range 30 {
		name := strings.Repeat("x", 1<<20) + string(rune('a'+i%26))
		_, err := e.svc.SignIn(ctx, &corev1.SignInRequest{Username: name, Password: "password1"})
		if connect.CodeOf(err) != connect.CodeInvalidArgument {
			t.Fatalf("1 MiB username: %v, want InvalidArgument", err)
		}
	}
	_, err := e.svc.SignIn(ctx, &corev1.SignInRequest{Username: "alice", Password: strings.Repeat("p", 1<<20)})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Fatalf("1 MiB password: %v, want InvalidArgument", err)
	}
	// None of that counted against the address.
	if _, err := e.svc.SignIn(ctx, &corev1.SignInRequest{Username: "alice", Password: "password1"}); err != nil {
		t.Fatalf("sign-in from the same address afterwards: %v", err)
	}
}
