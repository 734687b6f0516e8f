package query

import (
	"context"
	"time"

	"connectrpc.com/connect"

	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/store"
)

const (
	maxSubscribe = 100
	feedBuffer   = 8192
	sendBatch    = 1000
)

// Subscribe streams readings as they are stored. The first message carries
// no readings: it confirms the subscription is live, so a client may start
// producing. With since, stored readings from that time come first.
//
// Live readings are delivered whatever their timestamp (a device may send
// old ones), except those inside the replayed [since, newest replayed]
// window, which the replay may already have sent. A subscriber that falls
// behind the feed is caught up from the store by timestamp (List after the
// newest sent per sensor); in poll mode (query process without the
// pipeline) readings are found by timestamp too, so a late reading older
// than the newest one sent is only visible through ListReadings.
func (s *Service) Subscribe(ctx context.Context, req *queryv1.SubscribeRequest, stream *connect.ServerStream[queryv1.SubscribeResponse]) error {
	if _, ok := authn.FromContext(ctx); !ok {
		return errUnauthenticated // before validating anything
	}
	ids := req.GetSensorId()
	if len(ids) == 0 || len(ids) > maxSubscribe {
		return invalid("give 1 to %d sensor_id values", maxSubscribe)
	}
	for _, id := range ids {
		if _, err := s.authz.authorize(ctx, id, readData); err != nil {
			return toConnect(ctx, s.log, err)
		}
	}
	since, hasSince, err := parseTime("since", req.GetSince())
	if err != nil {
		return err
	}
	if !hasSince {
		since = time.Now().UnixNano()
	}
	w := &watch{s: s, ids: ids, stream: stream, since: since, last: map[int64]int64{}, replayed: map[int64]int64{}}
	for _, id := range ids {
		w.last[id] = since - 1
		w.replayed[id] = since - 1
	}
	return toConnect(ctx, s.log, w.run(ctx, hasSince))
}

type watch struct {
	s      *Service
	ids    []int64
	stream *connect.ServerStream[queryv1.SubscribeResponse]
	since  int64
	// last is the newest timestamp sent per sensor; replayed the newest
	// sent from the store (catch-up), per sensor.
	last     map[int64]int64
	replayed map[int64]int64
}

func (w *watch) run(ctx context.Context, backlog bool) error {
	recheck := time.NewTicker(w.s.cfg.AuthCacheTTL)
	defer recheck.Stop()
	var sub *store.Subscription
	var poll <-chan time.Time
	if w.s.cfg.PollInterval > 0 {
		t := time.NewTicker(w.s.cfg.PollInterval)
		defer t.Stop()
		poll = t.C
		backlog = true
	} else {
		sub = w.s.st.Feed().Subscribe(w.ids, feedBuffer)
		defer func() { sub.Close() }()
	}
	if err := w.stream.Send(&queryv1.SubscribeResponse{}); err != nil {
		return err
	}
	if backlog {
		if err := w.catchUp(ctx); err != nil {
			return err
		}
	}
	var feed <-chan store.Reading
	if sub != nil {
		feed = sub.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-recheck.C:
			// The token (rotated, expired, deleted subject) and the grants
			// are read afresh, so a revocation ends the stream within one
			// recheck interval.
			if _, err := authn.Reauthenticate(ctx); err != nil {
				return err
			}
			for _, id := range w.ids {
				if _, err := w.s.authz.authorize(fresh(ctx), id, readData); err != nil {
					return err
				}
			}
		case <-poll:
			if err := w.catchUp(ctx); err != nil {
				return err
			}
		case r, ok := <-feed:
			if !ok {
				// Lagged: resubscribe first, then fill the gap from the store.
				sub = w.s.st.Feed().Subscribe(w.ids, feedBuffer)
				feed = sub.C
				if err := w.catchUp(ctx); err != nil {
					return err
				}
				continue
			}
			batch := w.acceptLive(nil, r)
		drain:
			for len(batch) < sendBatch {
				select {
				case r, ok := <-feed:
					if !ok {
						break drain
					}
					batch = w.acceptLive(batch, r)
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				if err := w.stream.Send(&queryv1.SubscribeResponse{Readings: batch}); err != nil {
					return err
				}
			}
		}
	}
}

// acceptLive appends a reading from the feed unless the replay may have
// sent it already.
func (w *watch) acceptLive(batch []*queryv1.Reading, r store.Reading) []*queryv1.Reading {
	if r.TimeNS >= w.since && r.TimeNS <= w.replayed[r.SensorID] {
		return batch
	}
	w.last[r.SensorID] = max(w.last[r.SensorID], r.TimeNS)
	return append(batch, toProto(r))
}

// acceptStored appends a reading found in the store after the newest sent.
func (w *watch) acceptStored(batch []*queryv1.Reading, r store.Reading) []*queryv1.Reading {
	if r.TimeNS <= w.last[r.SensorID] {
		return batch
	}
	w.last[r.SensorID] = r.TimeNS
	w.replayed[r.SensorID] = max(w.replayed[r.SensorID], r.TimeNS)
	return append(batch, toProto(r))
}

// catchUp sends every stored reading newer than the last one sent.
func (w *watch) catchUp(ctx context.Context) error {
	for _, id := range w.ids {
		for {
			rs, more, err := w.s.st.List(ctx, store.ListQuery{SensorID: id, FromNS: w.last[id] + 1, Limit: sendBatch})
			if err != nil {
				return err
			}
			var batch []*queryv1.Reading
			for _, r := range rs {
				batch = w.acceptStored(batch, r)
			}
			if len(batch) > 0 {
				if err := w.stream.Send(&queryv1.SubscribeResponse{Readings: batch}); err != nil {
					return err
				}
			}
			if !more {
				break
			}
		}
	}
	return nil
}
