//go:build !cgo

package buskafka

import (
	"context"
	"log/slog"

	busv1 "github.com/iotplatform/iotplatform/gen/iot/bus/v1"
	"github.com/iotplatform/iotplatform/internal/bus"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Available reports whether this binary contains the Kafka client: false in
// this CGO_ENABLED=0 build, whose constructors all return ErrNotBuilt.
const Available = false

// Producer is absent from this build; NewProducer returns ErrNotBuilt.
type Producer struct{}

// Provisioner is absent from this build.
type Provisioner struct{}

var _ bus.Publisher = (*Producer)(nil)

// NewProducer returns ErrNotBuilt: this binary has no Kafka client.
func NewProducer(*slog.Logger, Config) (*Producer, error) { return nil, ErrNotBuilt }

// Publish returns ErrNotBuilt.
func (*Producer) Publish(context.Context, []*busv1.Record) error { return ErrNotBuilt }

// WriteDeadLetters returns ErrNotBuilt.
func (*Producer) WriteDeadLetters(context.Context, []deadletter.Letter) error { return ErrNotBuilt }

// Ping returns ErrNotBuilt.
func (*Producer) Ping(context.Context) error { return ErrNotBuilt }

// Close does nothing.
func (*Producer) Close() error { return nil }

// EnsureTopics returns ErrNotBuilt.
func (*Producer) EnsureTopics(context.Context) error { return ErrNotBuilt }

// Provisioner returns a provisioner whose calls return ErrNotBuilt.
func (*Producer) Provisioner() *Provisioner { return &Provisioner{} }

// SensorCreated returns ErrNotBuilt.
func (*Provisioner) SensorCreated(context.Context, registry.Sensor) error { return ErrNotBuilt }

// SensorDeleted returns ErrNotBuilt.
func (*Provisioner) SensorDeleted(context.Context, registry.Sensor) error { return ErrNotBuilt }

// Consume returns ErrNotBuilt.
func Consume(context.Context, *slog.Logger, ConsumeConfig, RawHandler) error { return ErrNotBuilt }
