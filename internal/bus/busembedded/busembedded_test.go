package busembedded_test

import (
	"context"
	"errors"
	"testing"
	"time"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/bus/busembedded"
	"github.com/iotplatform/iotplatform/internal/bus/bustest"
)

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) bustest.Backend {
		b := busembedded.New(5 * time.Second)
		return bustest.Backend{
			Pub:         b,
			NewSub:      func() bus.Subscriber { return b },
			Unavailable: func() bus.Publisher { return busembedded.New(time.Second) },
		}
	})
}

func TestPublish_SlowHandlerIsUnavailable(t *testing.T) {
	b := busembedded.New(50 * time.Millisecond)
	release := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Subscribe(ctx, func(ctx context.Context, _ []*busv1.Record) error {
		<-release
		return nil
	})
	defer close(release)
	var err error
	for i := 0; i < 100; i++ { // until the subscriber is installed
		err = b.Publish(context.Background(), []*busv1.Record{bustest.Rec(1, 1, 1)})
		if err != nil && errors.Is(err, context.DeadlineExceeded) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !errors.Is(err, bus.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Publish with a blocked handler = %v, want ErrUnavailable after the timeout", err)
	}
}

func TestSubscribe_OnlyOne(t *testing.T) {
	b := busembedded.New(time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Subscribe(ctx, func(context.Context, []*busv1.Record) error { return nil })
	for i := 0; i < 100; i++ {
		if err := b.Publish(ctx, []*busv1.Record{bustest.Rec(1, 1, 1)}); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Subscribe(ctx, nil); !errors.Is(err, busembedded.ErrAlreadySubscribed) {
		t.Fatalf("second Subscribe = %v", err)
	}
}
