package authn

import (
	"context"
	"crypto/x509"
	"errors"
	"net/http"

	"connectrpc.com/connect"

	"github.com/iotplatform/iotplatform/internal/apierror"
)

// Authenticator is what edges need from the verifier. The Verifier also
// authenticates device client certificates (CertificateAuthenticator); edges
// reach that through AuthenticateCredentials.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Principal, error)
}

// CertificateAuthenticator verifies TLS client certificate chains (leaf
// first); *Verifier implements it.
type CertificateAuthenticator interface {
	AuthenticateCertificate(ctx context.Context, chain []*x509.Certificate) (Principal, error)
}

// Middleware verifies the bearer token of every request that carries one
// (else the TLS client certificate, if any) and stores the principal in the
// request context. Requests without credentials pass through anonymous (each
// RPC decides whether that is allowed); a malformed or invalid token or
// certificate is refused with 401 and a JSON error.
func Middleware(a Authenticator, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, err := TokenFromHeader(r.Header)
		if errors.Is(err, ErrNoCredentials) {
			certs := PeerCertificates(r.TLS)
			if len(certs) == 0 {
				next.ServeHTTP(w, r)
				return
			}
			p, err := AuthenticateCredentials(r.Context(), a, Credentials{Certificates: certs})
			if err != nil {
				writeJSONError(w, http.StatusUnauthorized, "unauthenticated", publicMessage(err))
				return
			}
			next.ServeHTTP(w, r.WithContext(withCertificates(WithPrincipal(r.Context(), p), a, certs)))
			return
		}
		var p Principal
		if err == nil {
			p, err = a.Authenticate(r.Context(), tok)
		}
		if err != nil {
			writeJSONError(w, http.StatusUnauthorized, "unauthenticated", publicMessage(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(withToken(WithPrincipal(r.Context(), p), a, tok)))
	})
}

func publicMessage(err error) string {
	switch {
	case errors.Is(err, ErrMalformed):
		return ErrMalformed.Error()
	case errors.Is(err, ErrNoCredentials):
		return ErrNoCredentials.Error()
	case errors.Is(err, ErrTokenExpired):
		return ErrTokenExpired.Error()
	case errors.Is(err, ErrInvalidCertificate):
		return ErrInvalidCertificate.Error()
	default:
		return ErrInvalidToken.Error()
	}
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	apierror.Write(w, status, code, msg)
}

// NewInterceptor returns a Connect interceptor doing what Middleware does for
// Connect, gRPC and gRPC-Web calls, unary and streaming.
func NewInterceptor(a Authenticator) connect.Interceptor { return interceptor{a} }

type interceptor struct{ a Authenticator }

func (i interceptor) authenticate(ctx context.Context, h interface{ Get(string) string }) (context.Context, error) {
	v := h.Get("Authorization")
	if v == "" {
		certs := peerFromContext(ctx)
		if len(certs) == 0 {
			return ctx, nil
		}
		p, err := AuthenticateCredentials(ctx, i.a, Credentials{Certificates: certs})
		if err != nil {
			return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New(publicMessage(err)))
		}
		return withCertificates(WithPrincipal(ctx, p), i.a, certs), nil
	}
	tok, err := ParseBearer(v)
	if err == nil {
		var p Principal
		if p, err = i.a.Authenticate(ctx, tok); err == nil {
			return withToken(WithPrincipal(ctx, p), i.a, tok), nil
		}
	}
	return ctx, connect.NewError(connect.CodeUnauthenticated, errors.New(publicMessage(err)))
}

func (i interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if req.Spec().IsClient {
			return next(ctx, req)
		}
		ctx, err := i.authenticate(ctx, req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.authenticate(ctx, conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}

// Require returns the caller if its kind is one of kinds, else a Connect
// error: Unauthenticated without a caller, PermissionDenied otherwise.
func Require(ctx context.Context, kinds ...Kind) (Principal, error) {
	p, ok := FromContext(ctx)
	if !ok {
		return Principal{}, connect.NewError(connect.CodeUnauthenticated, errors.New("authorization required"))
	}
	for _, k := range kinds {
		if p.Kind == k {
			return p, nil
		}
	}
	return Principal{}, connect.NewError(connect.CodePermissionDenied, errors.New("this token may not call this method"))
}

type reauthKey struct{}

// withToken remembers how the caller was authenticated, for Reauthenticate.
func withToken(ctx context.Context, a Authenticator, tok string) context.Context {
	return context.WithValue(ctx, reauthKey{}, func(ctx context.Context) (Principal, error) {
		return a.Authenticate(ctx, tok)
	})
}

// withCertificates is withToken for a caller authenticated by certificate.
func withCertificates(ctx context.Context, a Authenticator, certs []*x509.Certificate) context.Context {
	return context.WithValue(ctx, reauthKey{}, func(ctx context.Context) (Principal, error) {
		return AuthenticateCredentials(ctx, a, Credentials{Certificates: certs})
	})
}

// Reauthenticate verifies the caller's token (or certificate) again. Long-lived streams call
// it per message or periodically, so a rotated key, a deleted device or an
// expired user token ends them within the verifier's staleness bound. A
// context without a token (in-process callers) keeps its principal.
func Reauthenticate(ctx context.Context) (Principal, error) {
	if f, ok := ctx.Value(reauthKey{}).(func(context.Context) (Principal, error)); ok {
		p, err := f(ctx)
		if err != nil {
			return p, connect.NewError(connect.CodeUnauthenticated, errors.New(publicMessage(err)))
		}
		return p, nil
	}
	p, ok := FromContext(ctx)
	if !ok {
		return p, connect.NewError(connect.CodeUnauthenticated, errors.New("authorization required"))
	}
	return p, nil
}
