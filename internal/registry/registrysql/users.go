package registrysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/iotplatform/iotplatform/internal/registry"
)

const userCols = `id, username, display_name, role, password_hash, token_gen, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (registry.User, error) {
	var u registry.User
	var role string
	var c, m int64
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &role, &u.PasswordHash, &u.TokenGen, &c, &m)
	u.Role, u.CreatedAt, u.UpdatedAt = registry.Role(role), fromMicros(c), fromMicros(m)
	return u, err
}

// CreateUser implements registry.Registry.
func (r *DB) CreateUser(ctx context.Context, u registry.User) (registry.User, error) {
	defer r.cache.invalidate()
	now := micros(r.now())
	row := r.row(ctx, `INSERT INTO users (username, display_name, role, password_hash, token_gen, created_at, updated_at)
		VALUES (?, ?, ?, ?, 0, ?, ?) RETURNING `+userCols, u.Username, u.DisplayName, string(u.Role), u.PasswordHash, now, now)
	out, err := scanUser(row)
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
	defer r.cache.invalidate()
	row := r.row(ctx, `UPDATE users SET display_name = ?, role = ?, password_hash = ?, token_gen = ?, updated_at = ?
		WHERE id = ? RETURNING `+userCols, u.DisplayName, string(u.Role), u.PasswordHash, u.TokenGen, micros(r.now()), u.ID)
	out, err := scanUser(row)
	return out, r.wrap("update user", err)
}

// CountAdmins implements registry.Registry.
func (r *DB) CountAdmins(ctx context.Context) (int, error) {
	var n int
	err := r.row(ctx, `SELECT COUNT(*) FROM users WHERE role = ?`, string(registry.RoleAdmin)).Scan(&n)
	return n, r.wrap("count admins", err)
}

// DeleteUser implements registry.Registry.
func (r *DB) DeleteUser(ctx context.Context, id int64) error {
	defer r.cache.invalidate()
	return r.wrap("delete user", r.tx(ctx, func(tx *sql.Tx) error {
		var role string
		if err := tx.QueryRowContext(ctx, r.d.rebind(`SELECT role FROM users WHERE id = ?`), id).Scan(&role); err != nil {
			return err
		}
		if role == string(registry.RoleAdmin) {
			var n int
			if err := tx.QueryRowContext(ctx, r.d.rebind(`SELECT COUNT(*) FROM users WHERE role = ?`), role).Scan(&n); err != nil {
				return err
			}
			if n <= 1 {
				return fmt.Errorf("the last admin cannot be deleted: %w", registry.ErrFailedPrecondition)
			}
		}
		_, err := tx.ExecContext(ctx, r.d.rebind(`DELETE FROM users WHERE id = ?`), id)
		return err
	}))
}
