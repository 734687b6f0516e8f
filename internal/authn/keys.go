package authn

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// KeySource resolves a verification key by its `kid`.
type KeySource interface {
	PublicKey(ctx context.Context, kid string) (ed25519.PublicKey, error)
}

// KeySet holds the Ed25519 signing key and every public key still accepted
// (older keys stay in the directory so tokens signed with them verify).
type KeySet struct {
	signingKID string
	signing    ed25519.PrivateKey
	public     map[string]ed25519.PublicKey
}

// LoadOrCreateKeys loads every *.pem private key from dir, creating a new
// key (0600) when there is none. All verify; the most recently modified
// file signs (add a key file to roll keys, remove one to retire it).
func LoadOrCreateKeys(dir string) (*KeySet, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key dir: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.pem"))
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	if len(files) == 0 {
		f, err := writeNewKey(dir)
		if err != nil {
			return nil, err
		}
		files = []string{f}
	}
	sort.SliceStable(files, func(i, j int) bool { return modTime(files[i]).Before(modTime(files[j])) })
	ks := &KeySet{public: map[string]ed25519.PublicKey{}}
	for _, f := range files {
		priv, err := readKey(f)
		if err != nil {
			return nil, err
		}
		kid := KeyID(priv.Public().(ed25519.PublicKey))
		ks.public[kid] = priv.Public().(ed25519.PublicKey)
		ks.signing, ks.signingKID = priv, kid
	}
	return ks, nil
}

// NewKeySet returns a KeySet that signs with priv (for tests and tools).
func NewKeySet(priv ed25519.PrivateKey) *KeySet {
	pub := priv.Public().(ed25519.PublicKey)
	kid := KeyID(pub)
	return &KeySet{signingKID: kid, signing: priv, public: map[string]ed25519.PublicKey{kid: pub}}
}

// KeyID derives a stable key id from a public key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func modTime(file string) time.Time {
	st, err := os.Stat(file)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime()
}

func writeNewKey(dir string) (string, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return "", fmt.Errorf("encode key: %w", err)
	}
	name := filepath.Join(dir, "signing-"+KeyID(priv.Public().(ed25519.PublicKey))+".pem")
	if err := os.WriteFile(name, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return "", fmt.Errorf("write key: %w", err)
	}
	return name, nil
}

func readKey(file string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("read key %s: no PEM block", filepath.Base(file))
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key %s: %w", filepath.Base(file), err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key %s is not Ed25519", filepath.Base(file))
	}
	return priv, nil
}

// PublicKey implements KeySource.
func (k *KeySet) PublicKey(_ context.Context, kid string) (ed25519.PublicKey, error) {
	pub, ok := k.public[kid]
	if !ok {
		return nil, ErrUnknownKey
	}
	return pub, nil
}

// ErrUnknownKey is returned for a `kid` no key matches.
var ErrUnknownKey = errors.New("unknown key id")

// JWK is one JSON Web Key (OKP / Ed25519).
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS returns the public keys as a JSON Web Key Set document.
func (k *KeySet) JWKS() []byte {
	keys := make([]JWK, 0, len(k.public))
	for kid, pub := range k.public {
		keys = append(keys, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: kid, Alg: "EdDSA", Use: "sig"})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Kid < keys[j].Kid })
	b, _ := json.Marshal(struct {
		Keys []JWK `json:"keys"`
	}{keys})
	return b
}

// ParseJWKS decodes a JWKS document into public keys by kid, keeping only
// Ed25519 signing keys.
func ParseJWKS(b []byte) (map[string]ed25519.PublicKey, error) {
	var doc struct {
		Keys []JWK `json:"keys"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	out := map[string]ed25519.PublicKey{}
	for _, k := range doc.Keys {
		if k.Kty != "OKP" || !strings.EqualFold(k.Crv, "Ed25519") {
			continue
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			continue
		}
		out[k.Kid] = ed25519.PublicKey(x)
	}
	return out, nil
}
