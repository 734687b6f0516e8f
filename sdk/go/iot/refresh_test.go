package iot_test

import (
	"context"
	"testing"
	"time"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// TestClient_RenewsShortLivedUserTokens: a signed-in client keeps working
// past the user token's expiry by refreshing it, until SignOut.
func TestClient_RenewsShortLivedUserTokens(t *testing.T) {
	url := startPlatform(t, "--user-token-ttl", "2s")
	ctx := context.Background()
	c := iot.New(url)
	if err := c.SignIn(ctx, "root", testPassword); err != nil {
		t.Fatal(err)
	}
	first := c.Token()
	time.Sleep(2500 * time.Millisecond) // the first user token has expired
	if _, err := c.Core.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{}); err != nil {
		t.Fatalf("call after the user token expired: %v", err)
	}
	if c.Token() == first {
		t.Fatal("the token was not renewed")
	}
	stale := iot.New(url, iot.WithToken(first))
	if _, err := stale.Core.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{}); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("the expired token still works: %v", err)
	}
	if err := c.Refresh(ctx); err != nil {
		t.Fatalf("explicit Refresh: %v", err)
	}
	if err := c.SignOut(ctx); err != nil {
		t.Fatal(err)
	}
	if err := c.Refresh(ctx); err == nil {
		t.Fatal("Refresh after SignOut succeeded")
	}
}
