// Package query implements QueryService (ranges, aggregates, latest values,
// live subscriptions, dead letters) over any store backend, and the
// consumer search proxy for the OpenSearch store.
package query

import (
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"

	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/gengrpc/queryv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Config tunes the service.
type Config struct {
	// AuthCacheTTL bounds how long sensor ownership and consumer grants are
	// cached (default and maximum cache.TTL, the platform's one staleness
	// bound): a revoked grant stops working within it.
	AuthCacheTTL time.Duration
	// PollInterval makes Subscribe poll the store at this interval instead of
	// listening to the in-process feed (for query processes that do not run
	// the pipeline). 0 uses the feed.
	PollInterval time.Duration
}

// Service implements queryv1connect.QueryServiceHandler. REST goes through
// RESTServer (same methods, gRPC streaming signature for Subscribe).
type Service struct {
	log   *slog.Logger
	st    store.Store
	authz *authorizer
	cfg   Config
}

var _ queryv1connect.QueryServiceHandler = (*Service)(nil)

// New returns the service reading from st.
func New(log *slog.Logger, reg Registry, st store.Store, cfg Config) *Service {
	if cfg.AuthCacheTTL <= 0 || cfg.AuthCacheTTL > cache.TTL {
		cfg.AuthCacheTTL = cache.TTL
	}
	return &Service{log: log, st: st, authz: newAuthorizer(reg, cfg.AuthCacheTTL), cfg: cfg}
}

// RESTServer adapts the service to the grpc-gateway server interface
// (queryv1grpc.QueryServiceServer); Subscribe is not exposed over REST.
type RESTServer struct{ *Service }

var _ queryv1grpc.QueryServiceServer = RESTServer{}

// Subscribe is only available over Connect, gRPC and gRPC-Web.
func (RESTServer) Subscribe(*queryv1.SubscribeRequest, grpc.ServerStreamingServer[queryv1.SubscribeResponse]) error {
	return connect.NewError(connect.CodeUnimplemented, fmt.Errorf("Subscribe is a server stream: use Connect, gRPC or gRPC-Web"))
}

// encodePageToken names the last reading of a page by its (timestamp, seq)
// ("t<ns>" when seq is 0, "t<ns>.<seq>" otherwise, base 36).
func encodePageToken(ns, seq int64) string {
	tok := "t" + strconv.FormatInt(ns, 36)
	if seq != 0 {
		tok += "." + strconv.FormatInt(seq, 36)
	}
	return tok
}

func decodePageToken(tok string) (ns, seq int64, err error) {
	bad := invalid("page_token is not one this API returned")
	if len(tok) < 2 || tok[0] != 't' {
		return 0, 0, bad
	}
	nsPart, seqPart, hasSeq := strings.Cut(tok[1:], ".")
	if ns, err = strconv.ParseInt(nsPart, 36, 64); err != nil {
		return 0, 0, bad
	}
	if hasSeq {
		if seq, err = strconv.ParseInt(seqPart, 36, 64); err != nil {
			return 0, 0, bad
		}
	}
	return ns, seq, nil
}

// ListReadings returns a page of one sensor's readings.
func (s *Service) ListReadings(ctx context.Context, req *queryv1.ListReadingsRequest) (*queryv1.ListReadingsResponse, error) {
	if _, err := s.authz.authorize(ctx, req.GetSensorId(), readData); err != nil {
		return nil, toConnect(ctx, s.log, err)
	}
	from, _, err := parseTime("from", req.GetFrom())
	if err != nil {
		return nil, err
	}
	to, _, err := parseTime("to", req.GetTo())
	if err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 || req.GetLimit() > store.MaxLimit {
		return nil, invalid("limit must be between 1 and %d", store.MaxLimit)
	}
	q := store.ListQuery{SensorID: req.GetSensorId(), FromNS: from, ToNS: to, Limit: store.ClampLimit(int(req.GetLimit()), 100)}
	if req.GetOrder() == queryv1.Order_ORDER_DESC {
		q.Order = store.Descending
	}
	if tok := req.GetPageToken(); tok != "" {
		if q.AfterNS, q.AfterSeq, err = decodePageToken(tok); err != nil {
			return nil, err
		}
		q.HasAfter = true
	}
	rs, more, err := s.st.List(ctx, q)
	if err != nil {
		return nil, toConnect(ctx, s.log, err)
	}
	res := &queryv1.ListReadingsResponse{Readings: readingsToProto(rs)}
	if more && len(rs) > 0 {
		last := rs[len(rs)-1]
		res.NextPageToken = encodePageToken(last.TimeNS, last.Seq)
	}
	return res, nil
}

// Aggregate returns bucketed statistics of one sensor.
func (s *Service) Aggregate(ctx context.Context, req *queryv1.AggregateRequest) (*queryv1.AggregateResponse, error) {
	sensor, err := s.authz.authorize(ctx, req.GetSensorId(), readData)
	if err != nil {
		return nil, toConnect(ctx, s.log, err)
	}
	from, ok, err := parseTime("from", req.GetFrom())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, invalid("from is required")
	}
	to, ok, err := parseTime("to", req.GetTo())
	if err != nil {
		return nil, err
	}
	if !ok {
		to = time.Now().UnixNano()
	}
	iv, err := parseInterval(req.GetInterval())
	if err != nil {
		return nil, err
	}
	fns := map[store.Func]bool{}
	for _, name := range req.GetFn() {
		f, err := store.ParseFunc(name)
		if err != nil {
			return nil, toConnect(ctx, s.log, err)
		}
		fns[f] = true
	}
	if len(fns) == 0 {
		fns[store.FuncAvg] = true
	}
	numeric := sensor.Type == registry.TypeDouble || sensor.Type == registry.TypeLong || sensor.Type == registry.TypeBoolean
	if !numeric && (len(fns) > 1 || !fns[store.FuncCount]) {
		return nil, invalid("sensor %d holds %s values: only fn=count is supported", sensor.ID, sensor.Type)
	}
	bs, err := s.st.Aggregate(ctx, store.AggregateQuery{SensorID: sensor.ID, FromNS: from, ToNS: to, Interval: iv})
	if err != nil {
		return nil, toConnect(ctx, s.log, err)
	}
	res := &queryv1.AggregateResponse{Buckets: make([]*queryv1.Bucket, len(bs))}
	pick := func(f store.Func, v float64) *float64 {
		if !fns[f] {
			return nil
		}
		return &v
	}
	for i, b := range bs {
		res.Buckets[i] = &queryv1.Bucket{
			Start: nsToTimestamp(b.StartNS), Count: b.Count,
			Avg: pick(store.FuncAvg, b.Avg), Min: pick(store.FuncMin, b.Min), Max: pick(store.FuncMax, b.Max),
			Sum: pick(store.FuncSum, b.Sum), First: pick(store.FuncFirst, b.First), Last: pick(store.FuncLast, b.Last),
		}
	}
	return res, nil
}

// maxLatest bounds the sensors of one Latest call.
const maxLatest = 1000

// Latest returns the newest reading of each sensor.
func (s *Service) Latest(ctx context.Context, req *queryv1.LatestRequest) (*queryv1.LatestResponse, error) {
	if _, ok := authn.FromContext(ctx); !ok {
		return nil, errUnauthenticated // before validating anything
	}
	ids := req.GetSensorId()
	if len(ids) == 0 || len(ids) > maxLatest {
		return nil, invalid("give 1 to %d sensor_id values", maxLatest)
	}
	for _, id := range ids {
		if _, err := s.authz.authorize(ctx, id, readLatest); err != nil {
			return nil, toConnect(ctx, s.log, err)
		}
	}
	rs, err := s.st.Latest(ctx, ids)
	if err != nil {
		return nil, toConnect(ctx, s.log, err)
	}
	by := make(map[int64]store.Reading, len(rs))
	for _, r := range rs {
		by[r.SensorID] = r
	}
	res := &queryv1.LatestResponse{}
	seen := map[int64]bool{}
	for _, id := range ids {
		if r, ok := by[id]; ok && !seen[id] {
			seen[id] = true
			res.Readings = append(res.Readings, toProto(r))
		}
	}
	return res, nil
}

// ListDeadLetters lists dead letters the caller may see.
func (s *Service) ListDeadLetters(ctx context.Context, req *queryv1.ListDeadLettersRequest) (*queryv1.ListDeadLettersResponse, error) {
	p, err := authn.Require(ctx, authn.KindUser)
	if err != nil {
		return nil, err
	}
	if req.GetLimit() < 0 || req.GetLimit() > 1000 {
		return nil, invalid("limit must be between 1 and 1000")
	}
	q := store.DeadLetterQuery{SensorID: req.GetSensorId(), Limit: store.ClampLimit(int(req.GetLimit()), 100), PageToken: req.GetPageToken()}
	if req.GetDeviceId() != 0 {
		q.DeviceIDs = []int64{req.GetDeviceId()}
	}
	if !p.Admin {
		if q.DeviceIDs, err = s.ownDevices(ctx, p.ID, req.GetDeviceId()); err != nil {
			return nil, toConnect(ctx, s.log, err)
		}
		if len(q.DeviceIDs) == 0 {
			return &queryv1.ListDeadLettersResponse{}, nil
		}
	}
	dls, next, err := s.st.ListDeadLetters(ctx, q)
	if err != nil {
		return nil, toConnect(ctx, s.log, err)
	}
	res := &queryv1.ListDeadLettersResponse{NextPageToken: next}
	for _, d := range dls {
		res.DeadLetters = append(res.DeadLetters, &queryv1.DeadLetter{
			Id: d.ID, DeviceId: d.DeviceID, SensorId: d.SensorID, Protocol: d.Protocol,
			Reason: d.Reason, Payload: d.Payload, Time: nsToTimestamp(d.TimeNS),
		})
	}
	return res, nil
}

// ownDevices returns the caller's devices, or just deviceID if it owns it.
func (s *Service) ownDevices(ctx context.Context, userID, deviceID int64) ([]int64, error) {
	if deviceID != 0 {
		owner, err := s.authz.owner(ctx, deviceID)
		if err != nil || owner != userID {
			return nil, denied("device %d is not yours", deviceID)
		}
		return []int64{deviceID}, nil
	}
	var ids []int64
	page := registry.Page{Limit: 500}
	for len(ids) < 10_000 {
		ds, err := s.authz.reg.ListDevices(ctx, registry.DeviceFilter{OwnerID: userID}, page)
		if err != nil {
			return nil, fmt.Errorf("list own devices: %w", err)
		}
		for _, d := range ds {
			ids = append(ids, d.ID)
		}
		if len(ds) < page.Limit {
			break
		}
		page.AfterID = ds[len(ds)-1].ID
	}
	return ids, nil
}
