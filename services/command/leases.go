package command

import (
	"context"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// leases keeps this process's device connections counted while it lives:
// every registry.ConnectionLeaseRenew it renews its lease, and uncounts the
// connections of processes whose lease expired (killed without closing
// them), so their devices show offline within registry.ConnectionLeaseTTL
// plus one renewal period (docs/COMMANDS.md). A lease found swept (this
// process could not reach the registry for a whole TTL) has its open
// connections recorded again.
func (s *Service) leases(ctx context.Context) {
	t := time.NewTicker(registry.ConnectionLeaseRenew)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		lost, err := s.store.RenewConnectionLease(ctx, now)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("renew connection lease", "err", err)
			}
			continue
		}
		if lost {
			s.hub.recount(ctx)
		}
		if ds, err := s.store.SweepConnections(ctx, now); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("sweep connections of dead processes", "err", err)
			}
		} else if len(ds) > 0 {
			s.log.Info("device connections of a process whose lease expired uncounted", "devices", len(ds))
		}
	}
}

// recount records every open session of this process as connected again
// (after its lease was swept).
func (h *hub) recount(ctx context.Context) {
	type conn struct {
		device int64
		edge   string
		since  time.Time
	}
	var cs []conn
	h.mu.Lock()
	for id, d := range h.devices {
		for _, s := range d.sessions {
			cs = append(cs, conn{id, s.Edge, s.Since})
		}
	}
	h.mu.Unlock()
	for _, c := range cs {
		if err := h.store.DeviceConnected(ctx, c.device, c.edge, c.since); err != nil {
			h.log.Warn("record device connection again", "device_id", c.device, "edge", c.edge, "err", err)
		}
	}
	if len(cs) > 0 {
		h.log.Warn("connection lease had expired: open connections recorded again", "connections", len(cs))
	}
}
