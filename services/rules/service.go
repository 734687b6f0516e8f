package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	rulesv1 "github.com/iotplatform/iotplatform/gen/iot/rules/v1"
	"github.com/iotplatform/iotplatform/gen/iot/rules/v1/rulesv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/gengrpc/rulesv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Registry is what the service needs of the registry besides the rules.
type Registry interface {
	GetSensor(ctx context.Context, id int64) (registry.Sensor, error)
	GetDevice(ctx context.Context, id int64) (registry.Device, error)
}

// ServiceConfig tunes the service.
type ServiceConfig struct {
	// RawRetention and MinuteRetention are the platform defaults reported by
	// GetSensorRetention (0: forever).
	RawRetention    time.Duration
	MinuteRetention time.Duration
	// WatchPoll is how often WatchAlerts looks for new events (default 250ms).
	WatchPoll time.Duration
}

// Service implements RulesService.
type Service struct {
	log   *slog.Logger
	reg   Registry
	rules registry.Rules
	cfg   ServiceConfig
}

var _ rulesv1connect.RulesServiceHandler = (*Service)(nil)

// NewService returns the service.
func NewService(log *slog.Logger, reg Registry, rs registry.Rules, cfg ServiceConfig) *Service {
	if cfg.WatchPoll <= 0 {
		cfg.WatchPoll = 250 * time.Millisecond
	}
	return &Service{log: log, reg: reg, rules: rs, cfg: cfg}
}

// RESTServer adapts the service to the grpc-gateway server interface;
// WatchAlerts is not exposed over REST.
type RESTServer struct{ *Service }

var _ rulesv1grpc.RulesServiceServer = RESTServer{}

// WatchAlerts is only available over Connect, gRPC and gRPC-Web.
func (RESTServer) WatchAlerts(*rulesv1.WatchAlertsRequest, grpc.ServerStreamingServer[rulesv1.WatchAlertsResponse]) error {
	return connect.NewError(connect.CodeUnimplemented, errors.New("WatchAlerts is a server stream: use Connect, gRPC or gRPC-Web"))
}

// commandName is what the command service accepts as a command name.
var commandName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

func invalid(field, problem string) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, problem))
}

func notFound(what string) error {
	return connect.NewError(connect.CodeNotFound, fmt.Errorf("%s not found", what))
}

// storeErr maps a registry error; unexpected ones are logged and hidden.
func (s *Service) storeErr(ctx context.Context, what string, err error) error {
	switch {
	case errors.Is(err, registry.ErrNotFound):
		return notFound(what)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeCanceled, errors.New("request cancelled"))
	}
	s.log.ErrorContext(ctx, "registry failure", "what", what, "err", err)
	return connect.NewError(connect.CodeInternal, errors.New("internal error"))
}

func requireUser(ctx context.Context) (authn.Principal, error) {
	return authn.Require(ctx, authn.KindUser)
}

func owns(p authn.Principal, owner int64) bool { return p.Admin || p.ID == owner }

// ownedSensor returns a sensor of the caller and its device's owner.
func (s *Service) ownedSensor(ctx context.Context, p authn.Principal, id int64) (registry.Sensor, int64, error) {
	sn, err := s.reg.GetSensor(ctx, id)
	if err != nil {
		return sn, 0, s.storeErr(ctx, "sensor", err)
	}
	d, err := s.reg.GetDevice(ctx, sn.DeviceID)
	if err != nil {
		return sn, 0, s.storeErr(ctx, "sensor", err)
	}
	if !owns(p, d.OwnerID) {
		return sn, 0, notFound("sensor")
	}
	return sn, d.OwnerID, nil
}

func (s *Service) ownedRule(ctx context.Context, id int64) (registry.Rule, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return registry.Rule{}, err
	}
	r, err := s.rules.GetRule(ctx, id)
	if err != nil {
		return r, s.storeErr(ctx, "rule", err)
	}
	if !owns(p, r.OwnerID) {
		return r, notFound("rule")
	}
	return r, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// specOf validates the condition of req against the sensor type.
func specOf(req *rulesv1.CreateRuleRequest, typ registry.ValueType) (string, Spec, error) {
	numeric := typ == registry.TypeDouble || typ == registry.TypeLong
	switch c := req.GetCondition().(type) {
	case *rulesv1.CreateRuleRequest_Threshold:
		t := c.Threshold
		if !numeric {
			return "", Spec{}, invalid("threshold", "needs a double or long sensor")
		}
		if !finite(t.GetLow()) || !finite(t.GetHigh()) {
			return "", Spec{}, invalid("threshold", "bounds must be finite")
		}
		sp := Spec{Op: int(t.GetOp()), Low: t.GetLow(), High: t.GetHigh()}
		switch t.GetOp() {
		case rulesv1.Threshold_OP_ABOVE, rulesv1.Threshold_OP_BELOW:
		case rulesv1.Threshold_OP_OUTSIDE:
			if t.GetLow() > t.GetHigh() {
				return "", Spec{}, invalid("threshold", "low must not be above high")
			}
		default:
			return "", Spec{}, invalid("threshold.op", "want OP_ABOVE, OP_BELOW or OP_OUTSIDE")
		}
		if d := t.GetDuration(); d != nil {
			if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || d.AsDuration() > 30*24*time.Hour {
				return "", Spec{}, invalid("threshold.duration", "must be between 0 and 30 days")
			}
			sp.DurationNS = int64(d.AsDuration())
		}
		return KindThreshold, sp, nil
	case *rulesv1.CreateRuleRequest_Rate:
		if !numeric {
			return "", Spec{}, invalid("rate", "needs a double or long sensor")
		}
		if m := c.Rate.GetMaxPerSecond(); !(m > 0) || !finite(m) {
			return "", Spec{}, invalid("rate.max_per_second", "must be positive")
		}
		return KindRate, Spec{MaxPerSecond: c.Rate.GetMaxPerSecond()}, nil
	case *rulesv1.CreateRuleRequest_Equals:
		switch v := c.Equals.GetValue().(type) {
		case *rulesv1.Equals_BoolValue:
			if typ != registry.TypeBoolean {
				return "", Spec{}, invalid("equals.bool_value", "needs a boolean sensor")
			}
			return KindEquals, Spec{EqBool: &v.BoolValue}, nil
		case *rulesv1.Equals_StringValue:
			if typ != registry.TypeString {
				return "", Spec{}, invalid("equals.string_value", "needs a string sensor")
			}
			return KindEquals, Spec{EqString: &v.StringValue}, nil
		}
		return "", Spec{}, invalid("equals", "set bool_value or string_value")
	case *rulesv1.CreateRuleRequest_Absence:
		if n := c.Absence.GetSeconds(); n < 1 || n > 365*24*3600 {
			return "", Spec{}, invalid("absence.seconds", "must be between 1 and one year")
		}
		return KindAbsence, Spec{AbsenceSeconds: c.Absence.GetSeconds()}, nil
	}
	return "", Spec{}, invalid("condition", "set one of threshold, absence, rate, equals")
}

func checkWebhook(raw string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(raw) > 2048 {
		return invalid("webhook_url", "want an http or https URL")
	}
	return nil
}

// CreateRule implements RulesService.CreateRule.
func (s *Service) CreateRule(ctx context.Context, req *rulesv1.CreateRuleRequest) (*rulesv1.CreateRuleResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	name := strings.TrimSpace(req.GetName())
	if name == "" || len(name) > 200 {
		return nil, invalid("name", "required, at most 200 bytes")
	}
	if err := checkWebhook(req.GetWebhookUrl()); err != nil {
		return nil, err
	}
	if len(req.GetWebhookSecret()) > 256 {
		return nil, invalid("webhook_secret", "at most 256 bytes")
	}
	r := registry.Rule{Name: name, WebhookURL: req.GetWebhookUrl(), WebhookSecret: req.GetWebhookSecret()}
	typ := registry.ValueType("")
	switch {
	case req.GetSensorId() > 0:
		sn, owner, err := s.ownedSensor(ctx, p, req.GetSensorId())
		if err != nil {
			return nil, err
		}
		r.SensorID, r.DeviceID, r.OwnerID, typ = sn.ID, sn.DeviceID, owner, sn.Type
	case req.GetDeviceId() > 0 && req.GetAbsence() != nil:
		d, err := s.reg.GetDevice(ctx, req.GetDeviceId())
		if err != nil {
			return nil, s.storeErr(ctx, "device", err)
		}
		if !owns(p, d.OwnerID) {
			return nil, notFound("device")
		}
		r.DeviceID, r.OwnerID = d.ID, d.OwnerID
	default:
		return nil, invalid("sensor_id", "required (device_id only for an absence rule)")
	}
	kind, sp, err := specOf(req, typ)
	if err != nil {
		return nil, err
	}
	if c := req.GetCommand(); c != nil {
		if !commandName.MatchString(c.GetName()) {
			return nil, invalid("command.name", "1-64 letters, digits, '_', '-' or '.'")
		}
		cs := &CommandSpec{Name: c.GetName()}
		if c.GetJsonPayload() != nil {
			b, err := protojson.Marshal(c.GetJsonPayload())
			if err != nil || len(b) > 16<<10 {
				return nil, invalid("command.json_payload", "a JSON object of at most 16 KiB")
			}
			cs.Payload = b
		}
		sp.Command = cs
	}
	r.Kind = kind
	r.Spec, _ = json.Marshal(sp)
	out, err := s.rules.CreateRule(ctx, r)
	if err != nil {
		return nil, s.storeErr(ctx, "rule", err)
	}
	return &rulesv1.CreateRuleResponse{Result: rulePB(out)}, nil
}

// GetRule implements RulesService.GetRule.
func (s *Service) GetRule(ctx context.Context, req *rulesv1.GetRuleRequest) (*rulesv1.GetRuleResponse, error) {
	r, err := s.ownedRule(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &rulesv1.GetRuleResponse{Result: rulePB(r)}, nil
}

func pageSize(n int32) int {
	switch {
	case n <= 0:
		return 100
	case n > 1000:
		return 1000
	}
	return int(n)
}

// ListRules implements RulesService.ListRules.
func (s *Service) ListRules(ctx context.Context, req *rulesv1.ListRulesRequest) (*rulesv1.ListRulesResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	var after int64
	if t := req.GetPageToken(); t != "" {
		if after, err = strconv.ParseInt(t, 10, 64); err != nil || after < 0 {
			return nil, invalid("page_token", "malformed")
		}
	}
	owner := p.ID
	if p.Admin {
		owner = 0
	}
	limit := pageSize(req.GetPageSize())
	rs, err := s.rules.ListRules(ctx, owner, req.GetSensorId(), registry.Page{AfterID: after, Limit: limit + 1})
	if err != nil {
		return nil, s.storeErr(ctx, "rules", err)
	}
	out := &rulesv1.ListRulesResponse{}
	if len(rs) > limit {
		rs = rs[:limit]
		out.NextPageToken = strconv.FormatInt(rs[limit-1].ID, 10)
	}
	for _, r := range rs {
		out.Result = append(out.Result, rulePB(r))
	}
	return out, nil
}

// DeleteRule implements RulesService.DeleteRule.
func (s *Service) DeleteRule(ctx context.Context, req *rulesv1.DeleteRuleRequest) (*rulesv1.DeleteRuleResponse, error) {
	if _, err := s.ownedRule(ctx, req.GetId()); err != nil {
		return nil, err
	}
	if err := s.rules.DeleteRule(ctx, req.GetId()); err != nil {
		return nil, s.storeErr(ctx, "rule", err)
	}
	return &rulesv1.DeleteRuleResponse{}, nil
}

func stateName(st rulesv1.Alert_State) string {
	switch st {
	case rulesv1.Alert_STATE_FIRING:
		return "firing"
	case rulesv1.Alert_STATE_RESOLVED:
		return "resolved"
	}
	return ""
}

// ListAlerts implements RulesService.ListAlerts.
func (s *Service) ListAlerts(ctx context.Context, req *rulesv1.ListAlertsRequest) (*rulesv1.ListAlertsResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	limit := pageSize(req.GetPageSize())
	f := registry.AlertFilter{RuleID: req.GetRuleId(), State: stateName(req.GetState()), Limit: limit + 1}
	if !p.Admin {
		f.OwnerID = p.ID
	}
	if t := req.GetPageToken(); t != "" {
		ns, id, ok := strings.Cut(t, ".")
		n, err := strconv.ParseInt(ns, 10, 64)
		if !ok || err != nil || id == "" {
			return nil, invalid("page_token", "malformed")
		}
		f.BeforeCreatedNS, f.BeforeID = n, id
	}
	as, err := s.rules.ListAlerts(ctx, f)
	if err != nil {
		return nil, s.storeErr(ctx, "alerts", err)
	}
	out := &rulesv1.ListAlertsResponse{}
	if len(as) > limit {
		as = as[:limit]
		last := as[limit-1]
		out.NextPageToken = strconv.FormatInt(last.CreatedNS, 10) + "." + last.ID
	}
	for _, a := range as {
		out.Result = append(out.Result, alertPB(a))
	}
	return out, nil
}

func (s *Service) ownedAlert(ctx context.Context, id string) (registry.Alert, authn.Principal, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return registry.Alert{}, p, err
	}
	if id == "" || len(id) > 64 {
		return registry.Alert{}, p, invalid("id", "malformed")
	}
	a, err := s.rules.GetAlert(ctx, id)
	if err != nil {
		return a, p, s.storeErr(ctx, "alert", err)
	}
	if !owns(p, a.OwnerID) {
		return a, p, notFound("alert")
	}
	return a, p, nil
}

// GetAlert implements RulesService.GetAlert.
func (s *Service) GetAlert(ctx context.Context, req *rulesv1.GetAlertRequest) (*rulesv1.GetAlertResponse, error) {
	a, _, err := s.ownedAlert(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	at, err := s.rules.DeliveryAttempts(ctx, a.ID)
	if err != nil {
		return nil, s.storeErr(ctx, "alert", err)
	}
	out := &rulesv1.GetAlertResponse{Result: alertPB(a)}
	for _, d := range at {
		out.Deliveries = append(out.Deliveries, &rulesv1.Delivery{
			Event: d.Event, Attempt: int32(d.Attempt), StatusCode: int32(d.StatusCode), Error: d.Error,
			Time: timestamppb.New(time.Unix(0, d.TimeNS)), Ok: d.OK,
		})
	}
	return out, nil
}

// AcknowledgeAlert implements RulesService.AcknowledgeAlert.
func (s *Service) AcknowledgeAlert(ctx context.Context, req *rulesv1.AcknowledgeAlertRequest) (*rulesv1.AcknowledgeAlertResponse, error) {
	_, p, err := s.ownedAlert(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	a, err := s.rules.AcknowledgeAlert(ctx, req.GetId(), p.ID, time.Now().UnixNano())
	if err != nil {
		return nil, s.storeErr(ctx, "alert", err)
	}
	return &rulesv1.AcknowledgeAlertResponse{Result: alertPB(a)}, nil
}

// WatchAlerts implements RulesService.WatchAlerts.
func (s *Service) WatchAlerts(ctx context.Context, req *rulesv1.WatchAlertsRequest, stream *connect.ServerStream[rulesv1.WatchAlertsResponse]) error {
	p, err := requireUser(ctx)
	if err != nil {
		return err
	}
	owner := p.ID
	if p.Admin {
		owner = 0
	}
	after := req.GetAfterEventId()
	if after <= 0 {
		if after, err = s.rules.LastAlertEvent(ctx); err != nil {
			return s.storeErr(ctx, "alerts", err)
		}
	}
	// The first message confirms the watch (clients wait for it to know
	// that events from now on reach them).
	if err := stream.Send(&rulesv1.WatchAlertsResponse{EventId: after}); err != nil {
		return err
	}
	t := time.NewTicker(s.cfg.WatchPoll)
	defer t.Stop()
	for {
		evs, err := s.rules.AlertEvents(ctx, owner, after, 500)
		if err != nil {
			return s.storeErr(ctx, "alerts", err)
		}
		for _, ev := range evs {
			a, err := s.rules.GetAlert(ctx, ev.AlertID)
			if err != nil {
				return s.storeErr(ctx, "alert", err)
			}
			if err := stream.Send(&rulesv1.WatchAlertsResponse{EventId: ev.ID, Event: ev.Event, Alert: alertPB(a)}); err != nil {
				return err
			}
			after = ev.ID
		}
		if len(evs) == 500 {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// SetSensorRetention implements RulesService.SetSensorRetention.
func (s *Service) SetSensorRetention(ctx context.Context, req *rulesv1.SetSensorRetentionRequest) (*rulesv1.SetSensorRetentionResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.ownedSensor(ctx, p, req.GetSensorId()); err != nil {
		return nil, err
	}
	var raw time.Duration
	if d := req.GetRaw(); d != nil {
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 {
			return nil, invalid("raw", "must be a non-negative duration")
		}
		raw = d.AsDuration()
	}
	if raw != 0 && raw < time.Minute {
		return nil, invalid("raw", "must be at least 1m (or 0 for the platform default)")
	}
	if err := s.rules.SetSensorRetention(ctx, req.GetSensorId(), int64(raw)); err != nil {
		return nil, s.storeErr(ctx, "sensor", err)
	}
	eff, over := s.effective(raw)
	return &rulesv1.SetSensorRetentionResponse{Raw: durationpb.New(eff), Overridden: over}, nil
}

func (s *Service) effective(override time.Duration) (time.Duration, bool) {
	if override > 0 {
		return override, true
	}
	return s.cfg.RawRetention, false
}

// GetSensorRetention implements RulesService.GetSensorRetention.
func (s *Service) GetSensorRetention(ctx context.Context, req *rulesv1.GetSensorRetentionRequest) (*rulesv1.GetSensorRetentionResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	if _, _, err := s.ownedSensor(ctx, p, req.GetSensorId()); err != nil {
		return nil, err
	}
	m, err := s.rules.SensorRetentions(ctx)
	if err != nil {
		return nil, s.storeErr(ctx, "sensor", err)
	}
	eff, over := s.effective(time.Duration(m[req.GetSensorId()]))
	return &rulesv1.GetSensorRetentionResponse{Raw: durationpb.New(eff), Overridden: over, MinuteRollups: durationpb.New(s.cfg.MinuteRetention)}, nil
}

func ts(ns int64) *timestamppb.Timestamp {
	if ns == 0 {
		return nil
	}
	return timestamppb.New(time.Unix(0, ns))
}

func rulePB(r registry.Rule) *rulesv1.Rule {
	out := &rulesv1.Rule{
		Id: r.ID, OwnerId: r.OwnerID, Name: r.Name, SensorId: r.SensorID, DeviceId: r.DeviceID,
		WebhookUrl: r.WebhookURL, HasWebhookSecret: r.WebhookSecret != "", CreateTime: ts(r.CreatedNS),
	}
	sp, _ := decodeSpec(r.Spec)
	if c := sp.Command; c != nil {
		out.Command = &rulesv1.RuleCommand{Name: c.Name}
		if len(c.Payload) > 0 {
			st := &structpb.Struct{}
			if protojson.Unmarshal(c.Payload, st) == nil {
				out.Command.JsonPayload = st
			}
		}
	}
	switch r.Kind {
	case KindThreshold:
		t := &rulesv1.Threshold{Op: rulesv1.Threshold_Op(sp.Op), Low: sp.Low, High: sp.High}
		if sp.DurationNS > 0 {
			t.Duration = durationpb.New(time.Duration(sp.DurationNS))
		}
		out.Condition = &rulesv1.Rule_Threshold{Threshold: t}
	case KindAbsence:
		out.Condition = &rulesv1.Rule_Absence{Absence: &rulesv1.Absence{Seconds: sp.AbsenceSeconds}}
	case KindRate:
		out.Condition = &rulesv1.Rule_Rate{Rate: &rulesv1.RateOfChange{MaxPerSecond: sp.MaxPerSecond}}
	case KindEquals:
		eq := &rulesv1.Equals{}
		if sp.EqBool != nil {
			eq.Value = &rulesv1.Equals_BoolValue{BoolValue: *sp.EqBool}
		} else if sp.EqString != nil {
			eq.Value = &rulesv1.Equals_StringValue{StringValue: *sp.EqString}
		}
		out.Condition = &rulesv1.Rule_Equals{Equals: eq}
	}
	return out
}

func alertPB(a registry.Alert) *rulesv1.Alert {
	st := rulesv1.Alert_STATE_FIRING
	if a.State == "resolved" {
		st = rulesv1.Alert_STATE_RESOLVED
	}
	return &rulesv1.Alert{
		Id: a.ID, RuleId: a.RuleID, RuleName: a.RuleName, SensorId: a.SensorID, DeviceId: a.DeviceID, State: st,
		Value: a.Value, FireTime: ts(a.FireNS), ResolveTime: ts(a.ResolveNS), ResolveValue: a.ResolveValue,
		AcknowledgedBy: a.AckBy, AcknowledgeTime: ts(a.AckNS), CreateTime: ts(a.CreatedNS),
	}
}
