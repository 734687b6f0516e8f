package authn

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/cache/cachetest"
)

// batchGens counts one-by-one and batch generation reads.
type batchGens struct {
	fakeGens
	single, batches atomic.Int64
}

func (b *batchGens) TokenGeneration(ctx context.Context, k Kind, id int64) (int64, error) {
	b.single.Add(1)
	return b.fakeGens.TokenGeneration(ctx, k, id)
}

func (b *batchGens) TokenGenerations(ctx context.Context, k Kind, ids []int64) (map[int64]int64, error) {
	b.batches.Add(1)
	out := map[int64]int64{}
	for _, id := range ids {
		if g, err := b.fakeGens.TokenGeneration(ctx, k, id); err == nil {
			out[id] = g
		}
	}
	return out, nil
}

// TestAuthenticate_BatchRefreshKeepsTheRevocationBound: with a generation
// source that reads many subjects at once, tokens in use are re-checked
// together (no one-by-one read after each token's first), and a revocation
// (generation bump) or a signing key removed from the key source still
// makes the token fail within the cache TTL, while the other tokens go on.
func TestAuthenticate_BatchRefreshKeepsTheRevocationBound(t *testing.T) {
	const ttl = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		change func(src *swappableKeys, gens *batchGens)
		others bool // the other devices' tokens stay valid
	}{
		{"token revoked", func(_ *swappableKeys, gens *batchGens) { gens.set(KindDevice, 7, 1) }, true},
		{"device deleted", func(_ *swappableKeys, gens *batchGens) {
			gens.mu.Lock()
			delete(gens.gens[KindDevice], 7)
			gens.mu.Unlock()
		}, true},
		{"key removed", func(src *swappableKeys, _ *batchGens) { src.mu.Lock(); src.gone = true; src.mu.Unlock() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := newKeys(t)
			src := &swappableKeys{KeySource: keys}
			gens := &batchGens{}
			toks := map[int64]string{}
			for id := int64(7); id <= 9; id++ {
				gens.set(KindDevice, id, 0)
				toks[id], _ = NewSigner(keys).Issue(Principal{Kind: KindDevice, ID: id}, 0, 0)
			}
			v := NewVerifier(src, gens, VerifierConfig{CacheTTL: ttl})
			ctx := context.Background()
			end := time.Now().Add(4 * ttl)
			for time.Now().Before(end) {
				for id, tok := range toks {
					if p, err := v.Authenticate(ctx, tok); err != nil || p.ID != id {
						t.Fatalf("device %d: %+v %v", id, p, err)
					}
				}
				time.Sleep(ttl / 20)
			}
			if n := gens.single.Load(); n != 3 || gens.batches.Load() == 0 {
				t.Fatalf("%d one-by-one reads, %d batches: want 3 (the first uses), then batches only", n, gens.batches.Load())
			}
			tc.change(src, gens)
			cachetest.SeenWithin(t, ttl, "the token still passed", func() bool {
				_, err := v.Authenticate(ctx, toks[7])
				if err != nil && !errors.Is(err, ErrInvalidToken) {
					t.Fatal(err)
				}
				return err != nil
			})
			if tc.others {
				if _, err := v.Authenticate(ctx, toks[8]); err != nil {
					t.Fatalf("another device's token: %v", err)
				}
			}
		})
	}
}

// countedGens is a batchGens with a change counter covering device
// generations, bumped by every change of one (as the registry's triggers do).
type countedGens struct {
	batchGens
	changes atomic.Int64
	read    atomic.Int64 // generations read by batches
}

func (c *countedGens) TokenGenerations(ctx context.Context, k Kind, ids []int64) (map[int64]int64, error) {
	c.read.Add(int64(len(ids)))
	return c.batchGens.TokenGenerations(ctx, k, ids)
}

func (c *countedGens) GenerationsCounted(k Kind) bool { return k == KindDevice }

func (c *countedGens) GenerationChanges(context.Context) (int64, error) { return c.changes.Load(), nil }

// TestAuthenticate_CountedRefreshKeepsTheRevocationBound: with a change
// counter on the generations, refresh rounds during which nothing was
// written read no generation (but still re-check each token's signing key);
// a revocation or deletion (which moves the counter) and a signing key
// removed from the key source (which does not) still make the token fail
// within the cache TTL; the other tokens go on.
func TestAuthenticate_CountedRefreshKeepsTheRevocationBound(t *testing.T) {
	const ttl = 200 * time.Millisecond
	for _, tc := range []struct {
		name   string
		change func(src *swappableKeys, gens *countedGens)
		others bool
	}{
		{"token revoked", func(_ *swappableKeys, gens *countedGens) {
			gens.set(KindDevice, 7, 1)
			gens.changes.Add(1)
		}, true},
		{"device deleted", func(_ *swappableKeys, gens *countedGens) {
			gens.mu.Lock()
			delete(gens.gens[KindDevice], 7)
			gens.mu.Unlock()
			gens.changes.Add(1)
		}, true},
		{"key removed", func(src *swappableKeys, _ *countedGens) { src.mu.Lock(); src.gone = true; src.mu.Unlock() }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := newKeys(t)
			src := &swappableKeys{KeySource: keys}
			gens := &countedGens{}
			toks := map[int64]string{}
			for id := int64(7); id <= 9; id++ {
				gens.set(KindDevice, id, 0)
				toks[id], _ = NewSigner(keys).Issue(Principal{Kind: KindDevice, ID: id}, 0, 0)
			}
			v := NewVerifier(src, gens, VerifierConfig{CacheTTL: ttl})
			ctx := context.Background()
			use := func(d time.Duration) {
				for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(ttl / 20) {
					for id, tok := range toks {
						if p, err := v.Authenticate(ctx, tok); err != nil || p.ID != id {
							t.Fatalf("device %d: %+v %v", id, p, err)
						}
					}
				}
			}
			use(2 * ttl)
			read := gens.read.Load()
			use(3 * ttl)
			if n := gens.single.Load(); n != 3 || read == 0 {
				t.Fatalf("%d one-by-one reads, %d generations read by batches: want 3, then batches", n, read)
			}
			if n := gens.read.Load() - read; n != 0 {
				t.Fatalf("rounds with nothing written read %d generations", n)
			}
			tc.change(src, gens)
			cachetest.SeenWithin(t, ttl, "the token still passed", func() bool {
				_, err := v.Authenticate(ctx, toks[7])
				if err != nil && !errors.Is(err, ErrInvalidToken) {
					t.Fatal(err)
				}
				return err != nil
			})
			if tc.others {
				if _, err := v.Authenticate(ctx, toks[8]); err != nil {
					t.Fatalf("another device's token: %v", err)
				}
			}
		})
	}
}
