// Package authn holds the platform's only JWT code: key management, token
// issuing, THE verifier every edge calls (API, HTTP, WebSocket, MQTT and gRPC
// ingest), and the glue that puts the verified Principal into a request's
// context (HTTP middleware and a Connect interceptor).
package authn

import (
	"context"
	"errors"
	"net/http"
	"strings"
)

// Kind says what a token was issued to.
type Kind string

// Token kinds, carried in the "kind" claim.
const (
	KindUser     Kind = "user"
	KindDevice   Kind = "device"
	KindConsumer Kind = "consumer"
)

// Principal is the verified caller.
type Principal struct {
	Kind Kind
	// ID is the user, device or consumer id (the token's subject).
	ID int64
	// Admin is true for users with the admin role.
	Admin bool
}

// Errors returned by Authenticate and TokenFromHeader. Edges map
// ErrNoCredentials and ErrMalformed to 401 and ErrInvalidToken to 401 (API)
// or 403 (gateways, as the original platform did).
var (
	ErrNoCredentials = errors.New("authorization header missing")
	ErrMalformed     = errors.New("authorization header malformed, want \"Bearer <token>\"")
	ErrInvalidToken  = errors.New("token invalid, expired or revoked")
	// ErrTokenExpired is wrapped together with ErrInvalidToken when the
	// token's `exp` has passed, so edges can say so (401 "token expired").
	ErrTokenExpired = errors.New("token expired")
)

type principalKey struct{}

// WithPrincipal returns a context carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the caller verified by the middleware or interceptor.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// TokenFromHeader extracts the bearer token from an `authorization` header
// (any header case; the scheme is case-insensitive).
func TokenFromHeader(h http.Header) (string, error) {
	v := h.Get("Authorization")
	if v == "" {
		return "", ErrNoCredentials
	}
	return ParseBearer(v)
}

// ParseBearer extracts the token of a "Bearer <token>" value.
func ParseBearer(v string) (string, error) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(v), " ")
	tok = strings.TrimSpace(tok)
	if !ok || !strings.EqualFold(scheme, "bearer") || tok == "" || strings.ContainsAny(tok, " \t") {
		return "", ErrMalformed
	}
	return tok, nil
}
