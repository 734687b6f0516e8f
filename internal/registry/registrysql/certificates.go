package registrysql

import (
	"context"

	"github.com/iotplatform/iotplatform/internal/registry"
)

const certCols = `fingerprint, device_id, created_at`

func scanCert(row interface{ Scan(...any) error }) (registry.DeviceCertificate, error) {
	var c registry.DeviceCertificate
	var at int64
	err := row.Scan(&c.Fingerprint, &c.DeviceID, &at)
	c.CreatedAt = fromMicros(at)
	return c, err
}

// AddDeviceCertificate implements registry.Registry.
func (r *DB) AddDeviceCertificate(ctx context.Context, c registry.DeviceCertificate) (registry.DeviceCertificate, error) {
	now := micros(r.now())
	var out registry.DeviceCertificate
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanCert(w.row(`INSERT INTO device_certificates (fingerprint, device_id, created_at)
		VALUES (?, ?, ?) RETURNING `+certCols, c.Fingerprint, c.DeviceID, now))
		return err
	})
	return out, r.wrap("add device certificate", err)
}

// GetDeviceCertificate implements registry.Registry.
func (r *DB) GetDeviceCertificate(ctx context.Context, deviceID int64, fingerprint string) (registry.DeviceCertificate, error) {
	c, err := scanCert(r.row(ctx, `SELECT `+certCols+` FROM device_certificates WHERE device_id = ? AND fingerprint = ?`, deviceID, fingerprint))
	return c, r.wrap("get device certificate", err)
}

// ListDeviceCertificates implements registry.Registry.
func (r *DB) ListDeviceCertificates(ctx context.Context, deviceID int64) ([]registry.DeviceCertificate, error) {
	rows, err := r.rows(ctx, `SELECT `+certCols+` FROM device_certificates WHERE device_id = ? ORDER BY created_at, fingerprint`, deviceID)
	if err != nil {
		return nil, r.wrap("list device certificates", err)
	}
	defer rows.Close()
	out := []registry.DeviceCertificate{}
	for rows.Next() {
		c, err := scanCert(rows)
		if err != nil {
			return nil, r.wrap("list device certificates", err)
		}
		out = append(out, c)
	}
	return out, r.wrap("list device certificates", rows.Err())
}

// RemoveDeviceCertificate implements registry.Registry.
func (r *DB) RemoveDeviceCertificate(ctx context.Context, deviceID int64, fingerprint string) error {
	err := r.write(ctx, func(w wtx) error {
		res, err := w.exec(`DELETE FROM device_certificates WHERE device_id = ? AND fingerprint = ?`, deviceID, fingerprint)
		if err != nil {
			return err
		}
		return mustAffect(res)
	})
	return r.wrap("remove device certificate", err)
}
