package registrysql

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/iotplatform/iotplatform/internal/registry"
)

var _ registry.Rules = (*DB)(nil)

const ruleCols = `id, owner_id, name, COALESCE(sensor_id, 0), device_id, kind, spec, webhook_url, webhook_secret, created_at`

func scanRule(row interface{ Scan(...any) error }) (registry.Rule, error) {
	var r registry.Rule
	var spec string
	err := row.Scan(&r.ID, &r.OwnerID, &r.Name, &r.SensorID, &r.DeviceID, &r.Kind, &spec, &r.WebhookURL, &r.WebhookSecret, &r.CreatedNS)
	r.Spec = []byte(spec)
	return r, err
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// CreateRule implements registry.Rules.
func (r *DB) CreateRule(ctx context.Context, ru registry.Rule) (registry.Rule, error) {
	now := r.now().UnixNano()
	var out registry.Rule
	err := r.write(ctx, func(w wtx) (err error) {
		out, err = scanRule(w.row(`INSERT INTO rules (owner_id, name, sensor_id, device_id, kind, spec, webhook_url, webhook_secret, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING `+ruleCols,
			ru.OwnerID, ru.Name, nullID(ru.SensorID), ru.DeviceID, ru.Kind, string(ru.Spec), ru.WebhookURL, ru.WebhookSecret, now))
		if err != nil {
			return err
		}
		_, err = w.exec(`UPDATE rules_meta SET version = version + 1 WHERE k = 1`)
		return err
	})
	return out, r.wrap("create rule", err)
}

// GetRule implements registry.Rules.
func (r *DB) GetRule(ctx context.Context, id int64) (registry.Rule, error) {
	ru, err := scanRule(r.row(ctx, `SELECT `+ruleCols+` FROM rules WHERE id = ?`, id))
	return ru, r.wrap("get rule", err)
}

// ListRules implements registry.Rules.
func (r *DB) ListRules(ctx context.Context, ownerID, sensorID int64, p registry.Page) ([]registry.Rule, error) {
	q := `SELECT ` + ruleCols + ` FROM rules WHERE id > ?`
	args := []any{p.AfterID}
	if ownerID != 0 {
		q += ` AND owner_id = ?`
		args = append(args, ownerID)
	}
	if sensorID != 0 {
		q += ` AND sensor_id = ?`
		args = append(args, sensorID)
	}
	q += ` ORDER BY id LIMIT ?`
	args = append(args, p.Limit)
	rows, err := r.rows(ctx, q, args...)
	if err != nil {
		return nil, r.wrap("list rules", err)
	}
	defer rows.Close()
	out := []registry.Rule{}
	for rows.Next() {
		ru, err := scanRule(rows)
		if err != nil {
			return nil, r.wrap("list rules", err)
		}
		out = append(out, ru)
	}
	return out, r.wrap("list rules", rows.Err())
}

// DeleteRule implements registry.Rules.
func (r *DB) DeleteRule(ctx context.Context, id int64) error {
	err := r.write(ctx, func(w wtx) error {
		res, err := w.exec(`DELETE FROM rules WHERE id = ?`, id)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		if _, err := w.exec(`DELETE FROM rule_states WHERE rule_id = ?`, id); err != nil {
			return err
		}
		_, err = w.exec(`UPDATE rules_meta SET version = version + 1 WHERE k = 1`)
		return err
	})
	return r.wrap("delete rule", err)
}

// RulesVersion implements registry.Rules: the change counter combined with
// the row count, so deletions by cascade (a deleted sensor) count too.
func (r *DB) RulesVersion(ctx context.Context) (int64, error) {
	var v, n int64
	err := r.row(ctx, `SELECT (SELECT version FROM rules_meta WHERE k = 1), (SELECT COUNT(*) FROM rules)`).Scan(&v, &n)
	return v*1_000_003 + n, r.wrap("rules version", err)
}

// RuleStates implements registry.Rules.
func (r *DB) RuleStates(ctx context.Context, sensorIDs []int64) ([]registry.RuleState, error) {
	var out []registry.RuleState
	for len(sensorIDs) > 0 {
		chunk := sensorIDs[:min(len(sensorIDs), 500)]
		sensorIDs = sensorIDs[len(chunk):]
		args := make([]any, len(chunk))
		for i, id := range chunk {
			args[i] = id
		}
		rows, err := r.db.QueryContext(ctx, r.d.rebind(`SELECT rule_id, sensor_id, version, state FROM rule_states WHERE sensor_id IN (`+
			strings.TrimSuffix(strings.Repeat("?,", len(chunk)), ",")+`)`), args...)
		if err != nil {
			return nil, r.wrap("rule states", err)
		}
		for rows.Next() {
			var s registry.RuleState
			var st string
			if err := rows.Scan(&s.RuleID, &s.SensorID, &s.Version, &st); err != nil {
				rows.Close()
				return nil, r.wrap("rule states", err)
			}
			s.State = []byte(st)
			out = append(out, s)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, r.wrap("rule states", err)
		}
	}
	return out, nil
}

// ApplyTransitions implements registry.Rules.
func (r *DB) ApplyTransitions(ctx context.Context, ts []registry.Transition) ([]bool, error) {
	if len(ts) == 0 {
		return nil, nil
	}
	now := r.now().UnixNano()
	var applied []bool
	err := r.write(ctx, func(w wtx) error {
		applied = make([]bool, len(ts))
		for i, t := range ts {
			ok, err := applyTransition(w, t, now)
			if err != nil {
				return err
			}
			applied[i] = ok
		}
		return nil
	})
	return applied, r.wrap("apply rule transitions", err)
}

func affected(res sql.Result, err error) (bool, error) {
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n > 0, err
}

func applyTransition(w wtx, t registry.Transition, now int64) (bool, error) {
	s := t.State
	var ok bool
	var err error
	if s.Version == 0 {
		ok, err = affected(w.exec(`INSERT INTO rule_states (rule_id, sensor_id, version, state) VALUES (?, ?, 1, ?) ON CONFLICT DO NOTHING`,
			s.RuleID, s.SensorID, string(s.State)))
	} else {
		ok, err = affected(w.exec(`UPDATE rule_states SET version = version + 1, state = ? WHERE rule_id = ? AND sensor_id = ? AND version = ?`,
			string(s.State), s.RuleID, s.SensorID, s.Version))
	}
	if err != nil || !ok {
		return false, err
	}
	if t.ResolveID != "" {
		var owner int64
		err := w.row(`UPDATE alerts SET state = 'resolved', resolve_ns = ?, resolve_value = ? WHERE id = ? AND state = 'firing' RETURNING owner_id`,
			t.ResolveNS, t.ResolveValue, t.ResolveID).Scan(&owner)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return false, err
		default:
			if err := addEvent(w, t.ResolveID, "resolved", owner, now, t.WebhookURL); err != nil {
				return false, err
			}
		}
	}
	if a := t.Fire; a != nil {
		fired, err := affected(w.exec(`INSERT INTO alerts (id, rule_id, owner_id, rule_name, sensor_id, device_id, state, value, fire_ns, created_ns)
			VALUES (?, ?, ?, ?, ?, ?, 'firing', ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
			a.ID, a.RuleID, a.OwnerID, a.RuleName, a.SensorID, a.DeviceID, a.Value, a.FireNS, now))
		if err != nil {
			return false, err
		}
		if fired {
			if err := addEvent(w, a.ID, "fired", a.OwnerID, now, t.WebhookURL); err != nil {
				return false, err
			}
			if t.Command {
				if _, err := w.exec(`INSERT INTO alert_deliveries (alert_id, event, url, due_ns) VALUES (?, 'command', '', ?)`, a.ID, now); err != nil {
					return false, err
				}
			}
		}
	}
	return true, nil
}

func addEvent(w wtx, alertID, event string, owner, now int64, url string) error {
	if _, err := w.exec(`INSERT INTO alert_events (alert_id, event, owner_id, time_ns) VALUES (?, ?, ?, ?)`, alertID, event, owner, now); err != nil {
		return err
	}
	if url == "" {
		return nil
	}
	_, err := w.exec(`INSERT INTO alert_deliveries (alert_id, event, url, due_ns) VALUES (?, ?, ?, ?)`, alertID, event, url, now)
	return err
}

const alertCols = `id, rule_id, owner_id, rule_name, sensor_id, device_id, state, value, fire_ns, resolve_ns, resolve_value, ack_by, ack_ns, created_ns`

func scanAlert(row interface{ Scan(...any) error }) (registry.Alert, error) {
	var a registry.Alert
	err := row.Scan(&a.ID, &a.RuleID, &a.OwnerID, &a.RuleName, &a.SensorID, &a.DeviceID, &a.State, &a.Value, &a.FireNS, &a.ResolveNS, &a.ResolveValue, &a.AckBy, &a.AckNS, &a.CreatedNS)
	return a, err
}

// GetAlert implements registry.Rules.
func (r *DB) GetAlert(ctx context.Context, id string) (registry.Alert, error) {
	a, err := scanAlert(r.row(ctx, `SELECT `+alertCols+` FROM alerts WHERE id = ?`, id))
	return a, r.wrap("get alert", err)
}

// ListAlerts implements registry.Rules.
func (r *DB) ListAlerts(ctx context.Context, f registry.AlertFilter) ([]registry.Alert, error) {
	q := `SELECT ` + alertCols + ` FROM alerts WHERE 1 = 1`
	var args []any
	if f.OwnerID != 0 {
		q += ` AND owner_id = ?`
		args = append(args, f.OwnerID)
	}
	if f.RuleID != 0 {
		q += ` AND rule_id = ?`
		args = append(args, f.RuleID)
	}
	if f.State != "" {
		q += ` AND state = ?`
		args = append(args, f.State)
	}
	if f.BeforeID != "" {
		q += ` AND (created_ns < ? OR (created_ns = ? AND id < ?))`
		args = append(args, f.BeforeCreatedNS, f.BeforeCreatedNS, f.BeforeID)
	}
	q += ` ORDER BY created_ns DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	rows, err := r.rows(ctx, q, args...)
	if err != nil {
		return nil, r.wrap("list alerts", err)
	}
	defer rows.Close()
	out := []registry.Alert{}
	for rows.Next() {
		a, err := scanAlert(rows)
		if err != nil {
			return nil, r.wrap("list alerts", err)
		}
		out = append(out, a)
	}
	return out, r.wrap("list alerts", rows.Err())
}

// AcknowledgeAlert implements registry.Rules.
func (r *DB) AcknowledgeAlert(ctx context.Context, id string, userID, nowNS int64) (registry.Alert, error) {
	var out registry.Alert
	err := r.write(ctx, func(w wtx) error {
		ok, err := affected(w.exec(`UPDATE alerts SET ack_by = ?, ack_ns = ? WHERE id = ? AND ack_by = 0`, userID, nowNS, id))
		if err != nil {
			return err
		}
		if out, err = scanAlert(w.row(`SELECT `+alertCols+` FROM alerts WHERE id = ?`, id)); err != nil {
			return err
		}
		if ok {
			_, err = w.exec(`INSERT INTO alert_events (alert_id, event, owner_id, time_ns) VALUES (?, 'acknowledged', ?, ?)`, id, out.OwnerID, nowNS)
		}
		return err
	})
	return out, r.wrap("acknowledge alert", err)
}

// AlertEvents implements registry.Rules.
func (r *DB) AlertEvents(ctx context.Context, ownerID, afterID int64, limit int) ([]registry.AlertEvent, error) {
	q := `SELECT id, alert_id, event, owner_id, time_ns FROM alert_events WHERE id > ?`
	args := []any{afterID}
	if ownerID != 0 {
		q += ` AND owner_id = ?`
		args = append(args, ownerID)
	}
	q += ` ORDER BY id LIMIT ?`
	rows, err := r.rows(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, r.wrap("alert events", err)
	}
	defer rows.Close()
	var out []registry.AlertEvent
	for rows.Next() {
		var e registry.AlertEvent
		if err := rows.Scan(&e.ID, &e.AlertID, &e.Event, &e.OwnerID, &e.TimeNS); err != nil {
			return nil, r.wrap("alert events", err)
		}
		out = append(out, e)
	}
	return out, r.wrap("alert events", rows.Err())
}

// LastAlertEvent implements registry.Rules.
func (r *DB) LastAlertEvent(ctx context.Context) (int64, error) {
	var id int64
	err := r.row(ctx, `SELECT COALESCE(MAX(id), 0) FROM alert_events`).Scan(&id)
	return id, r.wrap("last alert event", err)
}

// ClaimDeliveries implements registry.Rules: each due delivery is leased by
// a compare-and-set on its lease, so concurrent workers never both take one.
func (r *DB) ClaimDeliveries(ctx context.Context, nowNS, leaseNS int64, limit int) ([]registry.Delivery, error) {
	rows, err := r.rows(ctx, `SELECT id, alert_id, event, url, attempts, due_ns, lease_ns FROM alert_deliveries
		WHERE done = 0 AND due_ns <= ? AND lease_ns <= ? ORDER BY due_ns, id LIMIT ?`, nowNS, nowNS, limit)
	if err != nil {
		return nil, r.wrap("claim deliveries", err)
	}
	var cands []registry.Delivery
	for rows.Next() {
		var d registry.Delivery
		if err := rows.Scan(&d.ID, &d.AlertID, &d.Event, &d.URL, &d.Attempts, &d.DueNS, &d.LeaseNS); err != nil {
			rows.Close()
			return nil, r.wrap("claim deliveries", err)
		}
		cands = append(cands, d)
	}
	rows.Close()
	if len(cands) == 0 {
		return nil, nil
	}
	var out []registry.Delivery
	err = r.write(ctx, func(w wtx) error {
		out = out[:0]
		for _, d := range cands {
			ok, err := affected(w.exec(`UPDATE alert_deliveries SET lease_ns = ? WHERE id = ? AND lease_ns = ? AND done = 0`, leaseNS, d.ID, d.LeaseNS))
			if err != nil {
				return err
			}
			if ok {
				d.LeaseNS = leaseNS
				out = append(out, d)
			}
		}
		return nil
	})
	return out, r.wrap("claim deliveries", err)
}

// RecordDelivery implements registry.Rules.
func (r *DB) RecordDelivery(ctx context.Context, a registry.DeliveryAttempt, dueNS int64, done bool) error {
	err := r.write(ctx, func(w wtx) error {
		okInt, doneInt := 0, 0
		if a.OK {
			okInt = 1
		}
		if done {
			doneInt = 1
		}
		if _, err := w.exec(`INSERT INTO delivery_attempts (delivery_id, alert_id, event, attempt, status_code, error, ok, time_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			a.DeliveryID, a.AlertID, a.Event, a.Attempt, a.StatusCode, a.Error, okInt, a.TimeNS); err != nil {
			return err
		}
		_, err := w.exec(`UPDATE alert_deliveries SET attempts = ?, due_ns = ?, lease_ns = 0, done = ? WHERE id = ?`, a.Attempt, dueNS, doneInt, a.DeliveryID)
		return err
	})
	return r.wrap("record delivery", err)
}

// DeliveryAttempts implements registry.Rules.
func (r *DB) DeliveryAttempts(ctx context.Context, alertID string) ([]registry.DeliveryAttempt, error) {
	rows, err := r.rows(ctx, `SELECT delivery_id, alert_id, event, attempt, status_code, error, ok, time_ns FROM delivery_attempts WHERE alert_id = ? ORDER BY id`, alertID)
	if err != nil {
		return nil, r.wrap("delivery attempts", err)
	}
	defer rows.Close()
	out := []registry.DeliveryAttempt{}
	for rows.Next() {
		var a registry.DeliveryAttempt
		var ok int
		if err := rows.Scan(&a.DeliveryID, &a.AlertID, &a.Event, &a.Attempt, &a.StatusCode, &a.Error, &ok, &a.TimeNS); err != nil {
			return nil, r.wrap("delivery attempts", err)
		}
		a.OK = ok != 0
		out = append(out, a)
	}
	return out, r.wrap("delivery attempts", rows.Err())
}

// SetSensorRetention implements registry.Rules.
func (r *DB) SetSensorRetention(ctx context.Context, sensorID, rawNS int64) error {
	err := r.write(ctx, func(w wtx) error {
		if rawNS <= 0 {
			_, err := w.exec(`DELETE FROM sensor_retention WHERE sensor_id = ?`, sensorID)
			return err
		}
		_, err := w.exec(`INSERT INTO sensor_retention (sensor_id, raw_ns) VALUES (?, ?) ON CONFLICT (sensor_id) DO UPDATE SET raw_ns = excluded.raw_ns`, sensorID, rawNS)
		return err
	})
	return r.wrap("set sensor retention", err)
}

// SensorRetentions implements registry.Rules.
func (r *DB) SensorRetentions(ctx context.Context) (map[int64]int64, error) {
	rows, err := r.rows(ctx, `SELECT sensor_id, raw_ns FROM sensor_retention`)
	if err != nil {
		return nil, r.wrap("sensor retentions", err)
	}
	defer rows.Close()
	out := map[int64]int64{}
	for rows.Next() {
		var id, ns int64
		if err := rows.Scan(&id, &ns); err != nil {
			return nil, r.wrap("sensor retentions", err)
		}
		out[id] = ns
	}
	return out, r.wrap("sensor retentions", rows.Err())
}
