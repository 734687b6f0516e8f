package app

import "github.com/iotplatform/iotplatform/internal/bus"

// Option adjusts what New builds beyond what a Config can say. It is for
// programs that embed the platform, such as the benchmarks in bench/:
// everything else runs exactly as `iotplatform serve` would.
type Option func(*options)

type options struct {
	// pub and sub replace the bus the Config selects (WithBus).
	pub bus.Publisher
	sub bus.Subscriber
}

// WithBus hands the bus module pub (and sub, for a pipeline role) instead
// of opening the bus the Config selects. The bus is then the embedder's:
// the ingest and pipeline roles may run apart, as on Kafka, and nothing of
// it is closed at shutdown. The ingest benchmarks use it to measure the
// edges against an instant in-memory sink (a busembedded.Bus whose one
// subscriber counts the records), with everything else wired by the app.
func WithBus(pub bus.Publisher, sub bus.Subscriber) Option {
	return func(o *options) { o.pub, o.sub = pub, sub }
}
