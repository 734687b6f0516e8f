//go:build cgo

package buskafka

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
)

// lagInterval is how often the consumer lag is measured.
const lagInterval = 5 * time.Second

// trackLag stores in lag, every lagInterval until ctx ends, how many
// records of the partitions assigned to c lie beyond the group's committed
// offsets (the high watermark minus the committed offset, or minus the low
// watermark when nothing is committed yet). It asks the brokers itself, so
// the lag keeps growing while the handler retries a failing batch.
func trackLag(ctx context.Context, c *kafka.Consumer, lag *atomic.Int64) {
	t := time.NewTicker(lagInterval)
	defer t.Stop()
	for {
		if n, ok := measureLag(c); ok {
			lag.Store(n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func measureLag(c *kafka.Consumer) (int64, bool) {
	parts, err := c.Assignment()
	if err != nil {
		return 0, false
	}
	if len(parts) == 0 {
		return 0, true
	}
	committed, err := c.Committed(parts, 5000)
	if err != nil {
		return 0, false
	}
	var total int64
	for _, p := range committed {
		lo, hi, err := c.QueryWatermarkOffsets(*p.Topic, p.Partition, 5000)
		if err != nil {
			return 0, false
		}
		from := lo
		if off := int64(p.Offset); off >= 0 {
			from = max(off, lo)
		}
		total += max(hi-from, 0)
	}
	return total, true
}
