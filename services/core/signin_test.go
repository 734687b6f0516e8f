package core

import (
	"context"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/internal/limits"
)

func TestSignInGuard_KDFPoolBoundsConcurrencyAndRefusesWithRetryAfter(t *testing.T) {
	g := newSignInGuard(SignInConfig{Workers: 2, Queue: 1, Wait: 200 * time.Millisecond, PerAddress: 100}, nil)
	release := make(chan struct{})
	var mu sync.Mutex
	running, peak := 0, 0
	work := func() {
		mu.Lock()
		running++
		peak = max(peak, running)
		mu.Unlock()
		<-release
		mu.Lock()
		running--
		mu.Unlock()
	}
	errs := make(chan error, 10)
	for i := 0; i < 3; i++ { // two hash, one waits
		go func() { errs <- g.kdf(context.Background(), work) }()
	}
	time.Sleep(50 * time.Millisecond)
	// The queue is full: refused at once with 503 and Retry-After.
	err := g.kdf(context.Background(), work)
	if connect.CodeOf(err) != connect.CodeUnavailable || err.(*connect.Error).Meta().Get("Retry-After") == "" {
		t.Fatalf("over the queue: %v, want unavailable with Retry-After", err)
	}
	// The waiting one gives up after Wait.
	if err := <-errs; connect.CodeOf(err) != connect.CodeUnavailable {
		t.Fatalf("waited past Wait: %v, want unavailable", err)
	}
	close(release)
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if peak != 2 {
		t.Fatalf("%d hashes ran at once, want at most 2", peak)
	}
}

func TestSignInGuard_OneAddressCannotFillTheQueue(t *testing.T) {
	g := newSignInGuard(SignInConfig{Workers: 1, Queue: 10, Wait: time.Second, PerAddress: 2}, nil)
	ctx := limits.WithClientAddr(context.Background(), "203.0.113.1")
	release := make(chan struct{})
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- g.kdf(ctx, func() { <-release }) }()
	}
	time.Sleep(50 * time.Millisecond)
	if err := g.kdf(ctx, func() {}); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("third sign-in of one address: %v, want resource_exhausted", err)
	}
	other := limits.WithClientAddr(context.Background(), "198.51.100.1")
	done := make(chan error, 1)
	go func() { done <- g.kdf(other, func() {}) }()
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("another address: %v", err)
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestSignInGuard_BackoffPerAccountAndAddress(t *testing.T) {
	g := newSignInGuard(SignInConfig{AccountFree: 2, AddressFree: 3, BackoffBase: time.Hour, BackoffMax: time.Hour}, nil)
	g.failed("Root", "a1")
	g.failed("root", "a2")
	if err := g.admit("root", "a3"); err != nil {
		t.Fatalf("within the free failures: %v", err)
	}
	g.failed("ROOT", "a3") // third failure of the account (names are case-insensitive)
	err := g.admit("root", "a4")
	if connect.CodeOf(err) != connect.CodeResourceExhausted || err.(*connect.Error).Meta().Get("Retry-After") != "3600" {
		t.Fatalf("account in backoff: %v", err)
	}
	if err := g.admit("alice", "a4"); err != nil {
		t.Fatalf("another account: %v", err)
	}
	for _, u := range []string{"x", "y", "z", "w"} {
		g.failed(u, "a9")
	}
	if err := g.admit("bob", "a9"); connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("address in backoff: %v", err)
	}
	g.succeeded("root")
	if err := g.admit("root", "a5"); err != nil {
		t.Fatalf("after a success: %v", err)
	}
}
