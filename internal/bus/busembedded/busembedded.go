// Package busembedded is the in-process bus: Publish hands the records
// synchronously to the subscribed handler (the pipeline, which commits them
// to the store) and returns its result, so a device is acked only once its
// readings are durable.
package busembedded

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
)

// ErrAlreadySubscribed is returned by a second concurrent Subscribe.
var ErrAlreadySubscribed = errors.New("embedded bus already has a subscriber")

// Bus is the in-process bus; the zero value is not usable, use New.
type Bus struct {
	timeout time.Duration

	mu sync.RWMutex
	h  bus.Handler
}

var (
	_ bus.Publisher  = (*Bus)(nil)
	_ bus.Subscriber = (*Bus)(nil)
)

// New returns a bus whose Publish waits at most timeout (default 5 s) for
// the handler before it gives up with bus.ErrUnavailable.
func New(timeout time.Duration) *Bus {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	return &Bus{timeout: timeout}
}

// Publish runs the subscribed handler on recs and returns nil only when it
// did. Without a subscriber, on a handler error, or when the handler takes
// longer than the timeout (or ctx ends), it returns an error wrapping
// bus.ErrUnavailable; the records may then still be stored (at-least-once).
func (b *Bus) Publish(ctx context.Context, recs []*busv1.Record) error {
	if len(recs) == 0 {
		return nil
	}
	b.mu.RLock()
	h := b.h
	b.mu.RUnlock()
	if h == nil {
		return fmt.Errorf("embedded bus: no subscriber: %w", bus.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- h(ctx, recs) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("embedded bus: handler: %w: %w", bus.ErrUnavailable, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded bus: %w: %w", bus.ErrUnavailable, ctx.Err())
	}
}

// Subscribe installs h as the one handler until ctx ends.
func (b *Bus) Subscribe(ctx context.Context, h bus.Handler) error {
	b.mu.Lock()
	if b.h != nil {
		b.mu.Unlock()
		return ErrAlreadySubscribed
	}
	b.h = h
	b.mu.Unlock()
	<-ctx.Done()
	b.mu.Lock()
	b.h = nil
	b.mu.Unlock()
	return nil
}

// Subscribed reports whether a handler is installed (readiness).
func (b *Bus) Subscribed() bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.h != nil
}
