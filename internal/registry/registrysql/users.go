package registrysql

import (
	"context"

	"github.com/iotplatform/iotplatform/internal/registry"
)

const userCols = `id, username, display_name, role, password_hash, token_gen, disabled, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (registry.User, error) {
	var u registry.User
	var role string
	var c, m, disabled int64
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &role, &u.PasswordHash, &u.TokenGen, &disabled, &c, &m)
	u.Disabled = disabled != 0
	u.Role, u.CreatedAt, u.UpdatedAt = registry.Role(role), fromMicros(c), fromMicros(m)
	return u, err
}

// CreateUser implements registry.Registry.
func (r *DB) CreateUser(ctx context.Context, u registry.User) (registry.User, error) {
	now := micros(r.now())
	var out registry.User
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanUser(w.row(`INSERT INTO users (username, display_name, role, password_hash, token_gen, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, ?, ?) RETURNING `+userCols, u.Username, u.DisplayName, string(u.Role), u.PasswordHash, now, now))
		return err
	})
	r.cache.Forget(cacheKey{keyUser, out.ID, 0})
	return out, r.wrap("create user", err)
}

// GetUser implements registry.Registry.
func (r *DB) GetUser(ctx context.Context, id int64) (registry.User, error) {
	return get(r.cache, cacheKey{keyUser, id, 0}, func() (registry.User, error) {
		u, err := scanUser(r.row(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
		return u, r.wrap("get user", err)
	}, same)
}

// GetUserByName implements registry.Registry.
func (r *DB) GetUserByName(ctx context.Context, name string) (registry.User, error) {
	u, err := scanUser(r.row(ctx, `SELECT `+userCols+` FROM users WHERE username = ?`, name))
	return u, r.wrap("get user", err)
}

// ListUsers implements registry.Registry.
func (r *DB) ListUsers(ctx context.Context, p registry.Page) ([]registry.User, error) {
	rows, err := r.rows(ctx, `SELECT `+userCols+` FROM users WHERE id > ? ORDER BY id LIMIT ?`, p.AfterID, p.Limit)
	if err != nil {
		return nil, r.wrap("list users", err)
	}
	defer rows.Close()
	var out []registry.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, r.wrap("list users", err)
		}
		out = append(out, u)
	}
	return out, r.wrap("list users", rows.Err())
}

// UpdateUser implements registry.Registry.
func (r *DB) UpdateUser(ctx context.Context, u registry.User) (registry.User, error) {
	now := micros(r.now())
	var out registry.User
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanUser(w.row(`UPDATE users SET display_name = ?, role = ?, password_hash = ?, token_gen = ?, disabled = ?, updated_at = ?
		WHERE id = ? RETURNING `+userCols, u.DisplayName, string(u.Role), u.PasswordHash, u.TokenGen, boolInt(u.Disabled), now, u.ID))
		return err
	})
	r.cache.Forget(cacheKey{keyUser, u.ID, 0})
	return out, r.wrap("update user", err)
}

// CountAdmins implements registry.Registry.
func (r *DB) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := r.row(ctx, `SELECT COUNT(*) FROM users WHERE role = ? AND disabled = 0`, string(registry.RoleAdmin)).Scan(&n)
	return n, r.wrap("count admins", err)
}

// DeleteUser implements registry.Registry.
func (r *DB) DeleteUser(ctx context.Context, id int64) error {
	defer r.cache.Forget()
	return r.wrap("delete user", r.write(ctx, func(w wtx) error {
		var role string
		var disabled int64
		if err := w.row(`SELECT role, disabled FROM users WHERE id = ?`, id).Scan(&role, &disabled); err != nil {
			return err
		}
		if role == string(registry.RoleAdmin) && disabled == 0 {
			var n int
			if err := w.row(`SELECT COUNT(*) FROM users WHERE role = ? AND disabled = 0`, role).Scan(&n); err != nil {
				return err
			}
			if n <= 1 {
				return &registry.PreconditionError{Reason: "the last admin cannot be deleted"}
			}
		}
		_, err := w.exec(`DELETE FROM users WHERE id = ?`, id)
		return err
	}))
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}
