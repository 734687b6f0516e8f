package authn

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/iotplatform/iotplatform/internal/cache"
)

// Issuer is the `iss` claim of every platform token.
const Issuer = "iotplatform"

// claims is the payload of every platform token.
type claims struct {
	Kind Kind   `json:"kind"`
	Role string `json:"role,omitempty"`
	// Gen is the subject's token generation at issue time; a rotation bumps
	// the stored generation and so retires every older token.
	Gen int64 `json:"gen"`
	jwt.RegisteredClaims
}

// Signer issues platform tokens with the active key.
type Signer struct {
	keys *KeySet
	now  func() time.Time
}

// NewSigner returns a Signer using keys.
func NewSigner(keys *KeySet) *Signer { return &Signer{keys: keys, now: time.Now} }

// Issue signs a token for p at generation gen; ttl 0 means no expiry
// (device and consumer keys).
func (s *Signer) Issue(p Principal, gen int64, ttl time.Duration) (string, error) {
	now := s.now()
	c := claims{Kind: p.Kind, Gen: gen, RegisteredClaims: jwt.RegisteredClaims{
		Issuer:   Issuer,
		Subject:  strconv.FormatInt(p.ID, 10),
		IssuedAt: jwt.NewNumericDate(now),
	}}
	if p.Kind == KindUser {
		c.Role = "user"
		if p.Admin {
			c.Role = "admin"
		}
	}
	if ttl > 0 {
		c.ExpiresAt = jwt.NewNumericDate(now.Add(ttl))
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	t.Header["kid"] = s.keys.signingKID
	out, err := t.SignedString(s.keys.signing)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return out, nil
}

// Generations tells the verifier the current token generation of a subject.
// It returns an error wrapping registry.ErrNotFound-like errors when the
// subject is gone; any error makes the token invalid.
type Generations interface {
	TokenGeneration(ctx context.Context, kind Kind, id int64) (int64, error)
}

// BatchGenerations is optionally implemented by a Generations: the current
// generations of many subjects of one kind in one registry read (subjects
// that are gone are left out of the map). With it the verifier re-checks the
// tokens in use together, ahead of their cache expiry (cache.NewRefreshing),
// instead of one registry read per token per CacheTTL — with many devices
// each sending rarely that was a read for every other message.
type BatchGenerations interface {
	TokenGenerations(ctx context.Context, kind Kind, ids []int64) (map[int64]int64, error)
}

// CountedGenerations is optionally implemented by a BatchGenerations whose
// source has a change counter (the registry's, registry.ChangeCounter):
// while the counter has not moved since a token's generation was read, the
// refresh round re-checks that token's signing key but does not read its
// generation again, so a round with nothing written costs one counter read.
type CountedGenerations interface {
	// GenerationsCounted reports whether GenerationChanges covers the
	// generations TokenGenerations returns for kind: read from the
	// source itself (past any cache) and changed only by writes that
	// increase the counter.
	GenerationsCounted(kind Kind) bool
	// GenerationChanges returns the counter: a number every write that
	// can change a counted generation, or remove its subject, increases
	// in the same transaction as the write.
	GenerationChanges(ctx context.Context) (int64, error)
}

// VerifierConfig tunes the verifier.
type VerifierConfig struct {
	// CacheTTL bounds how long a verified token is trusted without asking
	// Generations again: the staleness bound for rotation and revocation
	// (≤ 0: cache.TTL, the platform's one bound).
	CacheTTL time.Duration
	// CacheSize bounds the number of cached tokens (and, apart, of cached
	// certificates); ≤ 0: cache.DefaultMaxEntries.
	CacheSize int
}

// Verifier is the one place where platform JWTs are verified.
type Verifier struct {
	keys KeySource
	gens Generations
	cfg  VerifierConfig
	now  func() time.Time

	// roots and certs enable device certificates (EnableCertificates).
	roots func() *x509.CertPool
	certs CertificateRegistry

	// tokens holds verified tokens (the platform's one read cache,
	// internal/cache); certs holds verified client certificates by
	// fingerprint, apart from the token cache so no bearer string can ever
	// match one.
	tokens    *cache.Cache[string, cached]
	certCache *cache.Cache[string, cached]
	// signed holds tokens whose signature verified, with the key that
	// verified it, for SignatureTTL: when tokens expires an entry, only the
	// subject's generation is asked again (the revocation check, every
	// CacheTTL as before) and the signature is not verified again while its
	// key is still the one the key source returns for its kid. A token
	// string's claims never change, so this caches no registry answer.
	signed *cache.Cache[string, signedToken]
}

type cached struct {
	p       Principal
	gen     int64
	expires time.Time // token expiry (zero: none)
}

// signedToken is a token whose signature verified with key (kid).
type signedToken struct {
	c   cached
	kid string
	key ed25519.PublicKey
}

// SignatureTTL is how long a verified token signature is reused (while its
// key is unchanged): a device authenticated every 2 s (MQTT, WebSocket and
// stream re-checks) costs one Ed25519 verification per SignatureTTL instead
// of one per cache.TTL.
const SignatureTTL = 10 * time.Minute

// NewVerifier returns a verifier resolving keys through keys and checking
// rotation/revocation through gens.
func NewVerifier(keys KeySource, gens Generations, cfg VerifierConfig) *Verifier {
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = cache.TTL
	}
	v := &Verifier{keys: keys, gens: gens, cfg: cfg, now: time.Now}
	cc := cache.Config{TTL: cfg.CacheTTL, MaxEntries: cfg.CacheSize, Now: func() time.Time { return v.now() }}
	if bg, ok := gens.(BatchGenerations); ok {
		r := cache.Refresher[string, cached]{Batch: func(old map[string]cached) map[string]cached { return v.refresh(bg, old) }}
		if cg, ok := gens.(CountedGenerations); ok {
			r.Changes = func() (int64, error) {
				ctx, cancel := context.WithTimeout(context.Background(), v.refreshTimeout())
				defer cancel()
				return cg.GenerationChanges(ctx)
			}
			r.Counted = func(_ string, c cached) bool { return cg.GenerationsCounted(c.p.Kind) }
			r.Recheck = v.recheckKey
		}
		v.tokens = cache.NewRefreshingWith(cc, r)
	} else {
		v.tokens = cache.New[string, cached](cc)
	}
	v.certCache = cache.New[string, cached](cc)
	v.signed = cache.New[string, signedToken](cache.Config{TTL: SignatureTTL, MaxEntries: cfg.CacheSize, Now: cc.Now})
	return v
}

// Authenticate verifies token and returns its principal. A verified token
// (signature and the subject's generation) is trusted for CacheTTL, then
// verified again. Errors are ErrInvalidToken (wrapped) for any bad token.
func (v *Verifier) Authenticate(ctx context.Context, token string) (Principal, error) {
	if c, ok, _ := v.tokens.Get(token); ok {
		if !c.expires.IsZero() && !v.now().Before(c.expires) {
			return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
		}
		return c.p, nil
	}
	c, err := v.verifySignature(ctx, token)
	if err != nil {
		return Principal{}, err
	}
	cur, err := v.gens.TokenGeneration(ctx, c.p.Kind, c.p.ID)
	if err != nil || cur != c.gen {
		v.tokens.Forget(token)
		v.signed.Forget(token)
		if err != nil && ctx.Err() != nil {
			return Principal{}, ctx.Err()
		}
		return Principal{}, fmt.Errorf("%w: revoked", ErrInvalidToken)
	}
	v.tokens.Put(token, c)
	return c.p, nil
}

// refresh re-checks the cached tokens of old together, as Authenticate
// checks one token when its cache entry expired: the signing key of each is
// still the one the key source returns for its kid, and its subject's
// generation (one BatchGenerations read per kind of subject) is still the
// token's. It returns the tokens still valid; the others expire from the
// cache and their next use is refused by Authenticate.
func (v *Verifier) refresh(bg BatchGenerations, old map[string]cached) map[string]cached {
	ctx, cancel := context.WithTimeout(context.Background(), v.refreshTimeout())
	defer cancel()
	ids := map[Kind][]int64{}
	for _, c := range old {
		ids[c.p.Kind] = append(ids[c.p.Kind], c.p.ID)
	}
	gens := map[Kind]map[int64]int64{}
	for k, list := range ids {
		slices.Sort(list)
		g, err := bg.TokenGenerations(ctx, k, slices.Compact(list))
		if err != nil {
			continue // those tokens expire and are checked one by one
		}
		gens[k] = g
	}
	out := make(map[string]cached, len(old))
	for tok, c := range old {
		if cur, ok := gens[c.p.Kind][c.p.ID]; !ok || cur != c.gen {
			continue
		}
		if _, err := v.verifySignature(ctx, tok); err != nil {
			continue
		}
		out[tok] = c
	}
	return out
}

// recheckKey reports whether the signing key of a token whose generation
// the change counter vouched for is still the one the key source returns
// for its kid (what refresh checks besides the generation: keys do not live
// in the registry, so the counter says nothing about them).
func (v *Verifier) recheckKey(ctx context.Context, token string, _ cached) bool {
	_, err := v.verifySignature(ctx, token)
	return err == nil
}

// refreshTimeout bounds one refresh round's reads: an answer later than a
// quarter TTL is of no use (the entries expire meanwhile).
func (v *Verifier) refreshTimeout() time.Duration { return max(v.cfg.CacheTTL/4, 10*time.Millisecond) }

// verifySignature returns the claims of token: those of its earlier
// verification when its key (by kid) is still the same, else parse's.
func (v *Verifier) verifySignature(ctx context.Context, token string) (cached, error) {
	if s, ok, _ := v.signed.Get(token); ok {
		if !s.c.expires.IsZero() && !v.now().Before(s.c.expires) {
			return cached{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
		}
		if k, err := v.keys.PublicKey(ctx, s.kid); err == nil && k.Equal(s.key) {
			return s.c, nil
		}
		v.signed.Forget(token)
	}
	var s signedToken
	c, err := v.parse(ctx, token, &s)
	if err != nil {
		return cached{}, err
	}
	s.c = c
	v.signed.Put(token, s)
	return c, nil
}

// parse verifies token and returns its claims; the key that verified it
// goes to key.
func (v *Verifier) parse(ctx context.Context, token string, key *signedToken) (cached, error) {
	var cl claims
	_, err := jwt.ParseWithClaims(token, &cl, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := v.keys.PublicKey(ctx, kid)
		key.kid, key.key = kid, k
		return k, err
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()}),
		jwt.WithIssuer(Issuer),
		jwt.WithTimeFunc(v.now),
	)
	if errors.Is(err, jwt.ErrTokenExpired) {
		return cached{}, fmt.Errorf("%w: %w", ErrInvalidToken, ErrTokenExpired)
	}
	if err != nil {
		return cached{}, fmt.Errorf("%w: %s", ErrInvalidToken, shortReason(err))
	}
	id, err := strconv.ParseInt(cl.Subject, 10, 64)
	if err != nil || id <= 0 {
		return cached{}, fmt.Errorf("%w: bad subject", ErrInvalidToken)
	}
	p := Principal{Kind: cl.Kind, ID: id}
	switch cl.Kind {
	case KindUser:
		if cl.ExpiresAt == nil { // user tokens are always issued short-lived
			return cached{}, fmt.Errorf("%w: user token without expiry", ErrInvalidToken)
		}
		p.Admin = cl.Role == "admin"
	case KindDevice, KindConsumer:
	default:
		return cached{}, fmt.Errorf("%w: unknown token kind", ErrInvalidToken)
	}
	c := cached{p: p, gen: cl.Gen}
	if cl.ExpiresAt != nil {
		c.expires = cl.ExpiresAt.Time
	}
	return c, nil
}

func shortReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return "wrong issuer"
	default:
		return "rejected"
	}
}
