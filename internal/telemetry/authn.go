package telemetry

import (
	"context"
	"crypto/x509"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/iotplatform/iotplatform/internal/authn"
)

// Authenticator wraps a so every token or certificate check is an
// "authn.authenticate" span in the caller's trace. With tracing off it
// returns a itself.
func Authenticator(a authn.Authenticator) authn.Authenticator {
	if !Enabled() || a == nil {
		return a
	}
	return tracedAuth{a}
}

type tracedAuth struct{ next authn.Authenticator }

func (t tracedAuth) Authenticate(ctx context.Context, token string) (authn.Principal, error) {
	ctx, span := Start(ctx, "authn.authenticate", trace.SpanKindInternal)
	defer span.End()
	p, err := t.next.Authenticate(ctx, token)
	finishAuth(span, "token", p, err)
	return p, err
}

func (t tracedAuth) AuthenticateCertificate(ctx context.Context, chain []*x509.Certificate) (authn.Principal, error) {
	ctx, span := Start(ctx, "authn.authenticate", trace.SpanKindInternal)
	defer span.End()
	p, err := authn.AuthenticateCredentials(ctx, t.next, authn.Credentials{Certificates: chain})
	finishAuth(span, "certificate", p, err)
	return p, err
}

func finishAuth(span trace.Span, method string, p authn.Principal, err error) {
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(attribute.String("iot.auth.method", method))
	if err != nil {
		Fail(span, err)
		return
	}
	span.SetAttributes(attribute.String("iot.principal.kind", string(p.Kind)), attribute.Int64("iot.principal.id", p.ID))
}
