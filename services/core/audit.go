package core

import (
	"context"
	"strconv"
	"time"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Audit actions.
const (
	auditUserCreate     = "user.create"
	auditUserUpdate     = "user.update"
	auditUserDelete     = "user.delete"
	auditPasswordChange = "user.password.change"
	auditPasswordReset  = "user.password.reset"
	auditDeviceDelete   = "device.delete"
	auditDeviceKeyIssue = "device.key.issue"
	auditDeviceKeyRot   = "device.key.rotate"
	auditConsumerCreate = "consumer.create"
	auditConsumerDelete = "consumer.delete"
	auditConsumerKeyIss = "consumer.key.issue"
	auditConsumerKeyRot = "consumer.key.rotate"
	auditGrantCreate    = "grant.create"
	auditGrantRevoke    = "grant.revoke"
	// auditRefreshReplay: a used refresh token came back, so it was copied;
	// its whole session was ended (actor 0: the platform).
	auditRefreshReplay = "user.session.replay"
)

// Audit actions on what may authenticate as a device (certificates) and on
// the operator's flood control (the ingest limit).
const (
	auditDeviceCertAdd     = "device.certificate.add"
	auditDeviceCertRemove  = "device.certificate.remove"
	auditDeviceIngestLimit = "device.ingest_limit.change"
)

// audit records an action of the calling user in the audit log and in the
// structured log. The action already happened: a failure to store the
// event is logged at error level, not returned.
func (s *Service) audit(ctx context.Context, action, targetType string, targetID int64, details map[string]string) {
	var actor int64
	if p, ok := authn.FromContext(ctx); ok && p.Kind == authn.KindUser {
		actor = p.ID
	}
	e := registry.AuditEvent{ActorID: actor, Action: action, TargetType: targetType, TargetID: targetID, Details: details}
	s.log.InfoContext(ctx, "audit", "action", action, "actor_id", actor, "target_type", targetType, "target_id", targetID, "details", details)
	// The caller going away must not lose the record of what it did.
	if _, err := s.reg.AppendAudit(context.WithoutCancel(ctx), e); err != nil {
		s.log.ErrorContext(ctx, "audit event not stored", "action", action, "actor_id", actor, "target_type", targetType, "target_id", targetID, "err", err)
	}
}

// expiryDetail describes a key's expiry for the audit log.
func expiryDetail(exp time.Time) map[string]string {
	if exp.IsZero() {
		return map[string]string{"expire_time": "never"}
	}
	return map[string]string{"expire_time": exp.UTC().Format(time.RFC3339)}
}

// ListAuditEvents implements CoreService.ListAuditEvents. Admins.
func (s *Service) ListAuditEvents(ctx context.Context, req *corev1.ListAuditEventsRequest) (*corev1.ListAuditEventsResponse, error) {
	if _, err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	switch req.GetTargetType() {
	case "", "user", "device", "consumer":
	default:
		return nil, invalid("target_type", "want user, device or consumer")
	}
	f := registry.AuditFilter{ActorID: req.GetActorId(), Action: req.GetAction(), TargetType: req.GetTargetType(), TargetID: req.GetTargetId(),
		BeforeID: pg.AfterID, Limit: pg.Limit}
	if t := req.GetStartTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalid("start_time", "malformed timestamp")
		}
		f.Since = t.AsTime()
	}
	if t := req.GetEndTime(); t != nil {
		if err := t.CheckValid(); err != nil {
			return nil, invalid("end_time", "malformed timestamp")
		}
		f.Until = t.AsTime()
	}
	es, err := s.reg.ListAuditEvents(ctx, f)
	if err != nil {
		return nil, s.storeErr(ctx, "audit log", err)
	}
	out := &corev1.ListAuditEventsResponse{}
	out.Result, out.NextPageToken = toPage(es, pg.Limit, func(e registry.AuditEvent) int64 { return e.ID }, auditPB)
	return out, nil
}

func auditPB(e registry.AuditEvent) *corev1.AuditEvent {
	return &corev1.AuditEvent{Id: e.ID, Time: ts(e.Time), ActorId: e.ActorID, Action: e.Action, TargetType: e.TargetType, TargetId: e.TargetID, Details: e.Details}
}

// idDetail is a details map with one id.
func idDetail(key string, id int64) map[string]string {
	return map[string]string{key: strconv.FormatInt(id, 10)}
}
