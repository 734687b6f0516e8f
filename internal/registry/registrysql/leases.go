package registrysql

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

// newOwner is the id of one registry handle (one process): the owner of
// the device connections it counts (connection_leases, device_connections).
func newOwner() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Owner is this handle's connection owner id.
func (r *DB) Owner() string { return r.owner }

// countConnection records one more connection of the device by this
// handle, creating its lease if it has none (inside w).
func (r *DB) countConnection(w wtx, deviceID int64) error {
	if _, err := w.exec(`INSERT INTO connection_leases (owner, expires_at) VALUES (?, ?) ON CONFLICT (owner) DO NOTHING`,
		r.owner, micros(r.now().Add(registry.ConnectionLeaseTTL))); err != nil {
		return err
	}
	_, err := w.exec(`INSERT INTO device_connections (device_id, owner, n) VALUES (?, ?, 1)
		ON CONFLICT (device_id, owner) DO UPDATE SET n = device_connections.n + 1`, deviceID, r.owner)
	return err
}

// uncountConnection records one connection of the device by this handle
// as closed; false when the handle counted none (a sweep took them after
// its lease expired), so the device's total must not drop again.
func (r *DB) uncountConnection(w wtx, deviceID int64) (bool, error) {
	res, err := w.exec(`UPDATE device_connections SET n = n - 1 WHERE device_id = ? AND owner = ? AND n > 0`, deviceID, r.owner)
	if err != nil {
		return false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	_, err = w.exec(`DELETE FROM device_connections WHERE device_id = ? AND owner = ? AND n <= 0`, deviceID, r.owner)
	return true, err
}

// expiredConnections counts the device's connections held by expired
// leases (reads treat them as closed before a sweep does).
func (r *DB) expiredConnections(ctx context.Context, deviceID int64, now time.Time) (int64, error) {
	var n int64
	err := r.row(ctx, `SELECT COALESCE(SUM(c.n), 0) FROM device_connections c JOIN connection_leases l ON l.owner = c.owner
		WHERE c.device_id = ? AND l.expires_at < ?`, deviceID, micros(now)).Scan(&n)
	return n, err
}

// RenewConnectionLease implements registry.Commands.
func (r *DB) RenewConnectionLease(ctx context.Context, now time.Time) (bool, error) {
	lost := false
	err := r.write(ctx, func(w wtx) error {
		exp := micros(now.Add(registry.ConnectionLeaseTTL))
		res, err := w.exec(`UPDATE connection_leases SET expires_at = ? WHERE owner = ?`, exp, r.owner)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil || n > 0 {
			lost = false
			return err
		}
		// No lease: never had one (nothing counted yet) or swept. Either
		// way nothing of ours is counted now.
		var held int64
		if err := w.row(`SELECT COUNT(*) FROM device_connections WHERE owner = ?`, r.owner).Scan(&held); err != nil {
			return err
		}
		lost = held == 0
		_, err = w.exec(`INSERT INTO connection_leases (owner, expires_at) VALUES (?, ?) ON CONFLICT (owner) DO UPDATE SET expires_at = ?`, r.owner, exp, exp)
		return err
	})
	return lost, r.wrap("renew connection lease", err)
}

// SweepConnections implements registry.Commands.
func (r *DB) SweepConnections(ctx context.Context, now time.Time) ([]int64, error) {
	var changed []int64
	err := r.write(ctx, func(w wtx) error {
		changed = changed[:0]
		rows, err := w.rows(w.ctx, `SELECT owner FROM connection_leases WHERE expires_at < ?`, micros(now))
		if err != nil {
			return err
		}
		var owners []string
		for rows.Next() {
			var o string
			if err := rows.Scan(&o); err != nil {
				rows.Close()
				return err
			}
			owners = append(owners, o)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, o := range owners {
			// DELETE ... RETURNING: of two concurrent sweepers, only the
			// one that deleted a row uncounts it.
			drows, err := w.rows(w.ctx, `DELETE FROM device_connections WHERE owner = ? RETURNING device_id, n`, o)
			if err != nil {
				return err
			}
			type dn struct{ device, n int64 }
			var gone []dn
			for drows.Next() {
				var x dn
				if err := drows.Scan(&x.device, &x.n); err != nil {
					drows.Close()
					return err
				}
				gone = append(gone, x)
			}
			drows.Close()
			if err := drows.Err(); err != nil {
				return err
			}
			for _, x := range gone {
				if _, err := w.exec(`UPDATE device_state SET
					edge = CASE WHEN connections <= ? THEN '' ELSE edge END,
					online_since = CASE WHEN connections <= ? THEN 0 ELSE online_since END,
					connections = CASE WHEN connections <= ? THEN 0 ELSE connections - ? END WHERE device_id = ?`,
					x.n, x.n, x.n, x.n, x.device); err != nil {
					return err
				}
				if err := r.notify(w, x.device); err != nil {
					return err
				}
				changed = append(changed, x.device)
			}
			if _, err := w.exec(`DELETE FROM connection_leases WHERE owner = ? AND expires_at < ?`, o, micros(now)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, r.wrap("sweep connections", err)
	}
	for _, d := range changed {
		r.changes.publish(d)
	}
	return changed, nil
}
