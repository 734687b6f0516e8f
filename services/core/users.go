package core

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/limits"
	"github.com/iotplatform/iotplatform/internal/registry"
)

var usernameRE = regexp.MustCompile(`^[a-z0-9_]{3,30}$`)

// dummyHash is checked against when the user does not exist, so an unknown
// user costs as much as a wrong password.
// It is computed on first use, not at package init: an argon2id hash at
// init cost every process start (and a function's cold start) 50-300 ms.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("not-a-password", DefaultHashParams)
	return h
})

var errBadCredentials = errors.New("invalid username or password")

// Sign-in input bounds, generous above what CreateUser allows (usernames of
// 30, passwords of 256 characters) so no existing account is locked out.
const (
	maxSignInUsername = 256
	maxSignInPassword = 1024
)

// SignIn implements CoreService.SignIn. Public.
func (s *Service) SignIn(ctx context.Context, req *corev1.SignInRequest) (*corev1.SignInResponse, error) {
	if req.GetUsername() == "" {
		return nil, invalid("username", "required")
	}
	if req.GetPassword() == "" {
		return nil, invalid("password", "required")
	}
	// No account has longer credentials: refuse them before the throttles
	// keep the username as a key and before the KDF hashes the password.
	if len(req.GetUsername()) > maxSignInUsername {
		return nil, invalid("username", fmt.Sprintf("at most %d bytes", maxSignInUsername))
	}
	if len(req.GetPassword()) > maxSignInPassword {
		return nil, invalid("password", fmt.Sprintf("at most %d bytes", maxSignInPassword))
	}
	addr := limits.ClientAddr(ctx)
	if err := s.signIn.admit(req.GetUsername(), addr); err != nil {
		s.log.WarnContext(ctx, "sign-in throttled", "username", req.GetUsername(), "client_addr", addr)
		return nil, err
	}
	u, err := s.reg.GetUserByName(ctx, req.GetUsername())
	hash := u.PasswordHash
	if err != nil {
		if !errors.Is(err, registry.ErrNotFound) {
			return nil, s.storeErr(ctx, "user", err)
		}
		hash = dummyHash()
	}
	var ok bool
	var herr error
	if perr := s.signIn.kdf(ctx, func() { ok, herr = CheckPassword(req.GetPassword(), hash) }); perr != nil {
		reason := "busy"
		if connect.CodeOf(perr) == connect.CodeResourceExhausted {
			reason = "throttled"
		}
		s.signIn.failures.WithLabelValues(reason).Inc()
		return nil, perr
	}
	if err != nil || herr != nil || !ok {
		backoff := s.signIn.failed(req.GetUsername(), addr)
		s.log.WarnContext(ctx, "sign-in failed", "username", req.GetUsername(), "client_addr", addr,
			"known_user", err == nil, "backoff", backoff)
		return nil, connect.NewError(connect.CodeUnauthenticated, errBadCredentials)
	}
	s.signIn.succeeded(req.GetUsername())
	if u.Disabled {
		s.log.WarnContext(ctx, "sign-in of a disabled user", "username", req.GetUsername(), "client_addr", addr)
		return nil, connect.NewError(connect.CodePermissionDenied, errUserDisabled)
	}
	tok, err := s.signer.Issue(authn.Principal{Kind: authn.KindUser, ID: u.ID, Admin: u.Role == registry.RoleAdmin}, u.TokenGen, s.cfg.UserTokenTTL)
	if err != nil {
		return nil, s.storeErr(ctx, "token", err)
	}
	out := &corev1.SignInResponse{Token: tok, ExpireTime: timestamppb.New(time.Now().Add(s.cfg.UserTokenTTL)), User: userPB(u)}
	if err := s.issueRefresh(ctx, u, out); err != nil {
		return nil, err
	}
	return out, nil
}

// GetCurrentUser implements CoreService.GetCurrentUser. Users.
func (s *Service) GetCurrentUser(ctx context.Context, _ *corev1.GetCurrentUserRequest) (*corev1.GetCurrentUserResponse, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.reg.GetUser(ctx, p.ID)
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	return &corev1.GetCurrentUserResponse{Result: userPB(u)}, nil
}

// CreateUser implements CoreService.CreateUser. Admins.
func (s *Service) CreateUser(ctx context.Context, req *corev1.CreateUserRequest) (*corev1.CreateUserResponse, error) {
	if _, err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	if !usernameRE.MatchString(req.GetUsername()) {
		return nil, invalid("username", "must match ^[a-z0-9_]{3,30}$")
	}
	if err := checkText("display_name", req.GetDisplayName(), 0, 200); err != nil {
		return nil, err
	}
	if err := checkPassword("password", req.GetPassword()); err != nil {
		return nil, err
	}
	role, err := roleFromPB(req.GetRole())
	if err != nil {
		return nil, err
	}
	u, err := s.createUser(ctx, req.GetUsername(), req.GetDisplayName(), req.GetPassword(), role)
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	s.audit(ctx, auditUserCreate, "user", u.ID, map[string]string{"username": u.Username, "role": string(u.Role)})
	return &corev1.CreateUserResponse{Result: userPB(u)}, nil
}

func (s *Service) createUser(ctx context.Context, name, display, pw string, role registry.Role) (registry.User, error) {
	hash, err := s.hash(ctx, pw)
	if err != nil {
		return registry.User{}, err
	}
	return s.reg.CreateUser(ctx, registry.User{Username: name, DisplayName: display, Role: role, PasswordHash: hash})
}

// ListUsers implements CoreService.ListUsers. Admins.
func (s *Service) ListUsers(ctx context.Context, req *corev1.ListUsersRequest) (*corev1.ListUsersResponse, error) {
	if _, err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	pg, err := page(req.GetPageSize(), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	us, err := s.reg.ListUsers(ctx, pg)
	if err != nil {
		return nil, s.storeErr(ctx, "users", err)
	}
	out := &corev1.ListUsersResponse{}
	out.Result, out.NextPageToken = toPage(us, pg.Limit, func(u registry.User) int64 { return u.ID }, userPB)
	return out, nil
}

// selfOrAdmin returns the caller when it is user id or an admin.
func selfOrAdmin(ctx context.Context, id int64) (authn.Principal, error) {
	p, err := requireUser(ctx)
	if err != nil {
		return p, err
	}
	if !p.Admin && p.ID != id {
		return p, errorf(connect.CodePermissionDenied, "only admins may access other users")
	}
	return p, nil
}

// GetUser implements CoreService.GetUser. Admins or self.
func (s *Service) GetUser(ctx context.Context, req *corev1.GetUserRequest) (*corev1.GetUserResponse, error) {
	if _, err := selfOrAdmin(ctx, req.GetId()); err != nil {
		return nil, err
	}
	u, err := s.reg.GetUser(ctx, req.GetId())
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	return &corev1.GetUserResponse{Result: userPB(u)}, nil
}

// UpdateUser implements CoreService.UpdateUser. Admins or self (display name only).
func (s *Service) UpdateUser(ctx context.Context, req *corev1.UpdateUserRequest) (*corev1.UpdateUserResponse, error) {
	p, err := selfOrAdmin(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	u, err := s.reg.GetUser(ctx, req.GetId())
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	if req.DisplayName != nil {
		if err := checkText("display_name", req.GetDisplayName(), 0, 200); err != nil {
			return nil, err
		}
		u.DisplayName = req.GetDisplayName()
	}
	if req.Role != nil {
		if !p.Admin {
			return nil, errorf(connect.CodePermissionDenied, "only admins may change roles")
		}
		role, err := roleFromPB(req.GetRole())
		if err != nil {
			return nil, err
		}
		if u.Role == registry.RoleAdmin && role != registry.RoleAdmin {
			if n, err := s.reg.CountAdmins(ctx); err != nil {
				return nil, s.storeErr(ctx, "user", err)
			} else if n <= 1 {
				return nil, errorf(connect.CodeFailedPrecondition, "the last admin cannot lose the admin role")
			}
		}
		if role != u.Role {
			u.TokenGen++ // the role is in the token: retire old ones
		}
		u.Role = role
	}
	u, err = s.reg.UpdateUser(ctx, u)
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	if req.Role != nil {
		s.audit(ctx, auditUserUpdate, "user", u.ID, map[string]string{"role": string(u.Role)})
	}
	return &corev1.UpdateUserResponse{Result: userPB(u)}, nil
}

// ChangePassword implements CoreService.ChangePassword. Admins or self.
func (s *Service) ChangePassword(ctx context.Context, req *corev1.ChangePasswordRequest) (*corev1.ChangePasswordResponse, error) {
	p, err := selfOrAdmin(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	if err := checkPassword("new_password", req.GetNewPassword()); err != nil {
		return nil, err
	}
	u, err := s.reg.GetUser(ctx, req.GetId())
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	if p.ID == u.ID {
		if req.GetCurrentPassword() == "" {
			return nil, invalid("current_password", "required")
		}
		var ok bool
		if err := s.signIn.kdf(ctx, func() { ok, _ = CheckPassword(req.GetCurrentPassword(), u.PasswordHash) }); err != nil {
			return nil, err
		}
		if !ok {
			return nil, errorf(connect.CodePermissionDenied, "current_password is wrong")
		}
	}
	if u.PasswordHash, err = s.hash(ctx, req.GetNewPassword()); err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	u.TokenGen++
	if _, err := s.reg.UpdateUser(ctx, u); err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	// The new generation already refuses them; drop the rows too.
	if _, err := s.reg.RevokeRefreshTokens(ctx, u.ID); err != nil {
		s.log.WarnContext(ctx, "refresh tokens not deleted after a password change", "user_id", u.ID, "err", err)
	}
	if p.ID == u.ID {
		s.audit(ctx, auditPasswordChange, "user", u.ID, nil)
	} else {
		s.audit(ctx, auditPasswordReset, "user", u.ID, nil)
	}
	return &corev1.ChangePasswordResponse{}, nil
}

// DeleteUser implements CoreService.DeleteUser. Admins.
func (s *Service) DeleteUser(ctx context.Context, req *corev1.DeleteUserRequest) (*corev1.DeleteUserResponse, error) {
	if _, err := requireAdmin(ctx); err != nil {
		return nil, err
	}
	sensors, err := s.sensorsOfUser(ctx, req.GetId())
	if err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	if err := s.reg.DeleteUser(ctx, req.GetId()); err != nil {
		return nil, s.storeErr(ctx, "user", err)
	}
	s.audit(ctx, auditUserDelete, "user", req.GetId(), nil)
	for _, sn := range sensors {
		s.deprovision(ctx, sn)
	}
	return &corev1.DeleteUserResponse{}, nil
}

// EnsureAdmin creates the `root` admin on first start. It returns the
// password it generated, or "" when root existed or password was given.
func (s *Service) EnsureAdmin(ctx context.Context, password string) (generated string, err error) {
	if _, err := s.reg.GetUserByName(ctx, "root"); err == nil {
		return "", nil
	} else if !errors.Is(err, registry.ErrNotFound) {
		return "", err
	}
	if password == "" {
		if password, err = RandomPassword(); err != nil {
			return "", err
		}
		generated = password
	}
	if _, err := s.createUser(ctx, "root", "Administrator", password, registry.RoleAdmin); err != nil {
		return "", err
	}
	return generated, nil
}

func checkPassword(field, pw string) error {
	if n := len(pw); n < 8 || n > 256 {
		return invalid(field, "must have 8 to 256 characters")
	}
	return nil
}

func roleFromPB(r corev1.Role) (registry.Role, error) {
	switch r {
	case corev1.Role_ROLE_UNSPECIFIED, corev1.Role_ROLE_USER:
		return registry.RoleUser, nil
	case corev1.Role_ROLE_ADMIN:
		return registry.RoleAdmin, nil
	}
	return "", invalid("role", "unknown role")
}

func userPB(u registry.User) *corev1.User {
	role := corev1.Role_ROLE_USER
	if u.Role == registry.RoleAdmin {
		role = corev1.Role_ROLE_ADMIN
	}
	return &corev1.User{Id: u.ID, Username: u.Username, DisplayName: u.DisplayName, Role: role, CreateTime: ts(u.CreatedAt), UpdateTime: ts(u.UpdatedAt), Disabled: u.Disabled}
}

// sensorsOfUser lists every sensor of the user's devices, so their
// per-sensor resources can be released when the user goes.
func (s *Service) sensorsOfUser(ctx context.Context, userID int64) ([]registry.Sensor, error) {
	var out []registry.Sensor
	pg := registry.Page{Limit: maxPageSize}
	for {
		ds, err := s.reg.ListDevices(ctx, registry.DeviceFilter{OwnerID: userID}, pg)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			ss, err := s.reg.ListSensors(ctx, d.ID)
			if err != nil {
				return nil, err
			}
			out = append(out, ss...)
		}
		if len(ds) < pg.Limit {
			return out, nil
		}
		pg.AfterID = ds[len(ds)-1].ID
	}
}

// hash hashes pw on the bounded KDF workers.
func (s *Service) hash(ctx context.Context, pw string) (string, error) {
	var h string
	var herr error
	if err := s.signIn.kdf(ctx, func() { h, herr = HashPassword(pw, s.cfg.Hash) }); err != nil {
		return "", err
	}
	return h, herr
}
