package core

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/iotplatform/iotplatform/internal/limits"
)

// SignInConfig protects sign-in (and every other password hash) against
// floods: argon2id needs ~19 MiB and ~50 ms of a core per check.
type SignInConfig struct {
	// Workers bounds concurrent password hashes (default GOMAXPROCS), so
	// memory stays under Workers × the KDF's memory.
	Workers int
	// Queue bounds the requests waiting for a worker (default 32); more are
	// refused at once.
	Queue int
	// Wait is how long a request waits for a worker before it is refused
	// with 503 and Retry-After (default 2 s).
	Wait time.Duration
	// PerAddress bounds the sign-ins one client address may have waiting or
	// hashing (default 4); more are refused with 429, so one address cannot
	// fill the queue and keep everyone else out.
	PerAddress int
	// AccountFree and AddressFree are the failed sign-ins in a row allowed
	// per account and per client address before backoff starts (defaults
	// 5 and 20).
	AccountFree, AddressFree int
	// BackoffBase is the first backoff window, doubled by each further
	// failure up to BackoffMax (defaults 1 s and 1 min). The window always
	// ends: the rightful owner is never locked out for longer than BackoffMax.
	BackoffBase, BackoffMax time.Duration
}

func (c *SignInConfig) defaults() {
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Queue <= 0 {
		c.Queue = 32
	}
	if c.Wait <= 0 {
		c.Wait = 2 * time.Second
	}
	if c.PerAddress <= 0 {
		c.PerAddress = 4
	}
	if c.AccountFree <= 0 {
		c.AccountFree = 5
	}
	if c.AddressFree <= 0 {
		c.AddressFree = 20
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = time.Second
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = time.Minute
	}
}

// signInGuard is the KDF worker pool and the sign-in throttles.
type signInGuard struct {
	cfg      SignInConfig
	slots    chan struct{} // held while hashing
	admitted chan struct{} // held while hashing or waiting to
	accounts *limits.Backoff
	addrs    *limits.Backoff
	failures *prometheus.CounterVec

	mu       sync.Mutex
	inFlight map[string]int // per client address
}

func newSignInGuard(cfg SignInConfig, reg prometheus.Registerer) *signInGuard {
	cfg.defaults()
	g := &signInGuard{cfg: cfg,
		slots:    make(chan struct{}, cfg.Workers),
		admitted: make(chan struct{}, cfg.Workers+cfg.Queue),
		inFlight: map[string]int{},
		accounts: limits.NewBackoff(limits.BackoffConfig{Free: cfg.AccountFree, Base: cfg.BackoffBase, Max: cfg.BackoffMax}),
		addrs:    limits.NewBackoff(limits.BackoffConfig{Free: cfg.AddressFree, Base: cfg.BackoffBase, Max: cfg.BackoffMax}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "iot_signin_failures_total",
			Help: "Refused sign-ins by reason: bad_credentials, throttled (backoff), busy (KDF pool full)."}, []string{"reason"}),
	}
	for _, r := range []string{"bad_credentials", "throttled", "busy"} { // exported at 0 from the start
		g.failures.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(g.failures)
	}
	return g
}

var errKDFBusy = errors.New("too many sign-ins in progress, retry later")

// kdf runs fn (a password hash or check) on one of the bounded workers,
// waiting at most cfg.Wait for one.
func (g *signInGuard) kdf(ctx context.Context, fn func()) error {
	if addr := limits.ClientAddr(ctx); addr != "" {
		g.mu.Lock()
		if g.inFlight[addr] >= g.cfg.PerAddress {
			g.mu.Unlock()
			return throttled(time.Second)
		}
		g.inFlight[addr]++
		g.mu.Unlock()
		defer func() {
			g.mu.Lock()
			if g.inFlight[addr]--; g.inFlight[addr] <= 0 {
				delete(g.inFlight, addr)
			}
			g.mu.Unlock()
		}()
	}
	select {
	case g.admitted <- struct{}{}:
	default:
		return busy()
	}
	defer func() { <-g.admitted }()
	t := time.NewTimer(g.cfg.Wait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
	case <-t.C:
		return busy()
	case <-ctx.Done():
		return connect.NewError(connect.CodeCanceled, ctx.Err())
	}
	defer func() { <-g.slots }()
	fn()
	return nil
}

func busy() error {
	ce := connect.NewError(connect.CodeUnavailable, errKDFBusy)
	ce.Meta().Set("Retry-After", "1")
	return ce
}

func throttled(wait time.Duration) error {
	ce := connect.NewError(connect.CodeResourceExhausted, errors.New("too many failed sign-ins, retry later"))
	ce.Meta().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
	return ce
}

// admit refuses a sign-in for username from addr while either is in its
// backoff window.
func (g *signInGuard) admit(username, addr string) error {
	now := time.Now()
	wait := max(g.accounts.Wait(accountKey(username), now), g.addrs.Wait(addr, now))
	if wait > 0 {
		g.failures.WithLabelValues("throttled").Inc()
		return throttled(wait)
	}
	return nil
}

// failed records a wrong password and returns the backoff it triggered.
func (g *signInGuard) failed(username, addr string) time.Duration {
	now := time.Now()
	g.failures.WithLabelValues("bad_credentials").Inc()
	return max(g.accounts.Fail(accountKey(username), now), g.addrs.Fail(addr, now))
}

// succeeded clears the account's failures (not the address's: an attacker
// must not reset their address by signing in to an account of their own).
func (g *signInGuard) succeeded(username string) { g.accounts.Succeed(accountKey(username)) }

func accountKey(username string) string { return strings.ToLower(username) }
