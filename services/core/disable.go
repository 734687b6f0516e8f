package core

import (
	"context"
	"errors"
	"strconv"

	"connectrpc.com/connect"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/registry"
)

// Audit actions of SetUserDisabled.
const (
	auditUserDisable = "user.disable"
	auditUserEnable  = "user.enable"
)

// errUserDisabled is what a disabled user gets from SignIn (after the
// password checked out, so it tells nothing to someone without it).
var errUserDisabled = errors.New("this account is disabled; ask an administrator to enable it")

// SetUserDisabled implements CoreService.SetUserDisabled. Admins. Disabling
// bumps the user's token generation, so its refresh tokens stop working at
// once and its user tokens within the auth cache's staleness bound; the
// refresh-token rows are deleted too.
func (s *Service) SetUserDisabled(ctx context.Context, req *corev1.SetUserDisabledRequest) (*corev1.SetUserDisabledResponse, error) {
	p, err := requireAdmin(ctx)
	if err != nil {
		return nil, err
	}
	if req.GetDisabled() && p.ID == req.GetId() {
		return nil, errorf(connect.CodeFailedPrecondition, "admins cannot disable themselves")
	}
	u, err := s.reg.GetUser(ctx, req.GetId())
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	if u.Disabled == req.GetDisabled() {
		return &corev1.SetUserDisabledResponse{Result: userPB(u)}, nil // already so: nothing to record
	}
	if req.GetDisabled() && u.Role == registry.RoleAdmin {
		if n, err := s.reg.CountAdmins(ctx); err != nil {
			return nil, s.storeErr(ctx, "user", err)
		} else if n <= 1 {
			return nil, errorf(connect.CodeFailedPrecondition, "the last enabled admin cannot be disabled")
		}
	}
	u.Disabled = req.GetDisabled()
	if u.Disabled {
		u.TokenGen++ // retires its user and refresh tokens
	}
	if u, err = s.reg.UpdateUser(ctx, u); err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	action := auditUserEnable
	if u.Disabled {
		action = auditUserDisable
		// The new generation already refuses them; drop the rows too.
		if _, err := s.reg.RevokeRefreshTokens(ctx, u.ID); err != nil {
			s.log.WarnContext(ctx, "refresh tokens not deleted after disabling a user", "user_id", u.ID, "err", err)
		}
	}
	s.audit(ctx, action, "user", u.ID, map[string]string{"username": u.Username, "disabled": strconv.FormatBool(u.Disabled)})
	return &corev1.SetUserDisabledResponse{Result: userPB(u)}, nil
}
