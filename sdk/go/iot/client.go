// Package iot is the Go SDK of iotplatform: typed clients for CoreService,
// IngestService, QueryService and RulesService over Connect (default), gRPC or gRPC-Web,
// with the bearer token handled for you (unary and streaming calls).
//
//	c := iot.New("http://localhost:8080")
//	if err := c.SignIn(ctx, "root", password); err != nil { ... }
//	dev, err := c.Core.CreateDevice(ctx, &corev1.CreateDeviceRequest{Name: "car"})
//
// The SDK is the module github.com/iotplatform/iotplatform/sdk/go; it needs
// connect, protobuf and the generated code's module
// github.com/iotplatform/iotplatform/gen, not the server. The Example
// functions (sign in, manage devices, push readings, stream ingest with
// acknowledgements, subscribe, query) run against a real platform in its
// tests; docs/SDK.md has the install commands.
package iot

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"time"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/gen/iot/core/v1/corev1connect"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/gen/iot/rules/v1/rulesv1connect"
)

// Client talks to one platform. Its fields are the generated clients; every
// call carries the current token.
type Client struct {
	Core   corev1connect.CoreServiceClient
	Ingest ingestv1connect.IngestServiceClient
	Query  queryv1connect.QueryServiceClient
	// Rules manages rules, alerts and retention (docs/RULES.md).
	Rules rulesv1connect.RulesServiceClient
	// Command sends commands to devices and serves device state (users).
	Command commandv1connect.CommandServiceClient
	// Device is the device side: one stream for readings, commands and
	// answers (device tokens).
	Device commandv1connect.DeviceServiceClient

	// baseURL and opts are what New was given, for DeviceClient.
	baseURL string
	opts    []Option

	mu    sync.RWMutex
	token string
	// refresh and expires are set by SignIn: the refresh token and when
	// the user token expires.
	refresh string
	expires time.Time
	// refreshing serialises refreshes (each refresh token works once).
	refreshing sync.Mutex
}

type config struct {
	hc       connect.HTTPClient
	h2c      bool
	tls      *tls.Config
	token    string
	refresh  string
	expires  time.Time
	protocol connect.ClientOption
}

// Option configures New.
type Option func(*config)

// WithToken sets the token to send (a user, device or consumer JWT), in
// place of any session set before.
func WithToken(token string) Option {
	return func(c *config) { c.token, c.refresh, c.expires = token, "", time.Time{} }
}

// WithSession resumes a signed-in session saved from Session: the user
// token, the refresh token and the token's expiry (zero: renew at the first
// call). The client renews the token like after SignIn.
func WithSession(token, refresh string, expires time.Time) Option {
	return func(c *config) { c.token, c.refresh, c.expires = token, refresh, expires }
}

// WithHTTPClient replaces the HTTP client.
func WithHTTPClient(hc connect.HTTPClient) Option { return func(c *config) { c.hc = hc } }

// WithGRPC speaks gRPC (HTTP/2 without TLS for http:// URLs, HTTP/2 over
// TLS with WithTLS and https:// URLs) instead of Connect.
func WithGRPC() Option {
	return func(c *config) {
		c.protocol = connect.WithGRPC()
		c.h2c = true
	}
}

// WithHTTP2 speaks the Connect protocol over HTTP/2 without TLS (needed for
// bidirectional streams such as IngestStream on http:// URLs).
func WithHTTP2() Option { return func(c *config) { c.h2c = true } }

// WithTLS talks to an https:// URL with cfg: its RootCAs trust the server's
// certificate (nil: the system roots) and its Certificates may hold a device
// certificate, which authenticates the device without a token. HTTP/2 is
// negotiated by ALPN, so gRPC and bidirectional streams work.
func WithTLS(cfg *tls.Config) Option { return func(c *config) { c.tls = cfg } }

// WithGRPCWeb speaks gRPC-Web instead of Connect.
func WithGRPCWeb() Option { return func(c *config) { c.protocol = connect.WithGRPCWeb() } }

// New returns a client for the API at baseURL (e.g. http://localhost:8080).
func New(baseURL string, opts ...Option) *Client {
	var cfg config
	for _, o := range opts {
		o(&cfg)
	}
	switch {
	case cfg.hc != nil:
	case cfg.tls != nil:
		cfg.hc = &http.Client{Transport: &http.Transport{TLSClientConfig: cfg.tls, ForceAttemptHTTP2: true}}
	case cfg.h2c:
		cfg.hc = H2C()
	default:
		cfg.hc = http.DefaultClient
	}
	c := &Client{baseURL: baseURL, opts: opts, token: cfg.token, refresh: cfg.refresh, expires: cfg.expires}
	copts := []connect.ClientOption{connect.WithInterceptors(c.interceptor())}
	if cfg.protocol != nil {
		copts = append(copts, cfg.protocol)
	}
	c.Core = corev1connect.NewCoreServiceClient(cfg.hc, baseURL, copts...)
	c.Ingest = ingestv1connect.NewIngestServiceClient(cfg.hc, baseURL, copts...)
	c.Query = queryv1connect.NewQueryServiceClient(cfg.hc, baseURL, copts...)
	c.Rules = rulesv1connect.NewRulesServiceClient(cfg.hc, baseURL, copts...)
	c.Command = commandv1connect.NewCommandServiceClient(cfg.hc, baseURL, copts...)
	c.Device = commandv1connect.NewDeviceServiceClient(cfg.hc, baseURL, copts...)
	return c
}

// SetToken replaces the token sent with every call.
func (c *Client) SetToken(token string) {
	c.mu.Lock()
	c.token = token
	c.mu.Unlock()
}

// Token returns the current token.
func (c *Client) Token() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token
}

// Session returns the current user token, refresh token and the token's
// expiry, e.g. to store them and resume with WithSession. An empty refresh
// token means there is no session to renew.
func (c *Client) Session() (token, refresh string, expires time.Time) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.token, c.refresh, c.expires
}

// SignIn signs in as a user and keeps the token for later calls. The user
// token is short-lived; the client renews it with the refresh token from
// SignIn before it expires (see Refresh), until the session ends.
func (c *Client) SignIn(ctx context.Context, username, password string) error {
	resp, err := c.Core.SignIn(ctx, &corev1.SignInRequest{Username: username, Password: password})
	if err != nil {
		return err
	}
	c.setSession(resp.GetToken(), resp.GetRefreshToken(), resp.GetExpireTime().AsTime())
	return nil
}

func (c *Client) setSession(token, refresh string, expires time.Time) {
	c.mu.Lock()
	c.token, c.refresh, c.expires = token, refresh, expires
	c.mu.Unlock()
}

// refreshMargin is how long before its expiry a user token is renewed.
const refreshMargin = 30 * time.Second

// Refresh trades the refresh token from SignIn for a new user token (and a
// new refresh token). Calls do it on their own when the user token is about
// to expire; an error means the session is over (sign in again).
func (c *Client) Refresh(ctx context.Context) error {
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	return c.refreshLocked(ctx)
}

func (c *Client) refreshLocked(ctx context.Context) error {
	c.mu.RLock()
	rt := c.refresh
	c.mu.RUnlock()
	if rt == "" {
		return errors.New("iot: no refresh token (sign in first)")
	}
	resp, err := c.Core.RefreshToken(ctx, &corev1.RefreshTokenRequest{RefreshToken: rt})
	if err != nil {
		c.setSession(c.Token(), "", time.Time{}) // used up or revoked either way
		return err
	}
	c.setSession(resp.GetToken(), resp.GetRefreshToken(), resp.GetExpireTime().AsTime())
	return nil
}

// refreshIfDue renews the user token when it expires within refreshMargin.
// Failures are left to the call itself, which then gets unauthenticated.
func (c *Client) refreshIfDue(ctx context.Context) {
	due := func() bool {
		c.mu.RLock()
		defer c.mu.RUnlock()
		return c.refresh != "" && time.Until(c.expires) < refreshMargin
	}
	if !due() {
		return
	}
	c.refreshing.Lock()
	defer c.refreshing.Unlock()
	if due() { // another call may have refreshed meanwhile
		_ = c.refreshLocked(ctx)
	}
}

// SignOut revokes the refresh token and forgets the session.
func (c *Client) SignOut(ctx context.Context) error {
	c.mu.RLock()
	rt := c.refresh
	c.mu.RUnlock()
	c.setSession("", "", time.Time{})
	if rt == "" {
		return nil
	}
	_, err := c.Core.SignOut(ctx, &corev1.SignOutRequest{RefreshToken: rt})
	return err
}

// sessionProcedure reports the public session procedures, which are sent
// without the user token and never trigger a refresh.
func sessionProcedure(p string) bool {
	return p == corev1connect.CoreServiceRefreshTokenProcedure || p == corev1connect.CoreServiceSignInProcedure ||
		p == corev1connect.CoreServiceSignOutProcedure
}

// BaseURL returns the API URL the client talks to.
func (c *Client) BaseURL() string { return c.baseURL }

// DeviceClient returns a client of the same API, with the same options
// (protocol, TLS, HTTP client) plus opts, that acts as a device: it sends
// the device key of deviceID, fetched with this client's (user) token.
func (c *Client) DeviceClient(ctx context.Context, deviceID int64, opts ...Option) (*Client, error) {
	k, err := c.Core.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: deviceID})
	if err != nil {
		return nil, err
	}
	all := append(append(append([]Option{}, c.opts...), opts...), WithToken(k.GetToken()))
	return New(c.baseURL, all...), nil
}

func (c *Client) interceptor() connect.Interceptor { return bearer{c} }

type bearer struct{ c *Client }

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if sessionProcedure(req.Spec().Procedure) {
			// Public: an expired user token sent along would only be refused.
			return next(ctx, req)
		}
		b.c.refreshIfDue(ctx)
		if t := b.c.Token(); t != "" {
			req.Header().Set("Authorization", "Bearer "+t)
		}
		return next(ctx, req)
	}
}

func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		b.c.refreshIfDue(ctx)
		conn := next(ctx, spec)
		if t := b.c.Token(); t != "" {
			conn.RequestHeader().Set("Authorization", "Bearer "+t)
		}
		return conn
	}
}

func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// H2C returns an HTTP client speaking HTTP/2 without TLS (prior knowledge),
// for http:// URLs.
func H2C() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}}
}
