package registrysql

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/stdlib"

	"github.com/iotplatform/iotplatform/internal/registry"
)

var _ registry.Commands = (*DB)(nil)

// changesChannel is the PostgreSQL NOTIFY channel carrying the ids of
// devices whose commands or state changed.
const changesChannel = "iot_changes"

const commandCols = `id, device_id, name, payload, is_binary, status, created_by, created_at, expires_at, result, edge`

func scanCommand(row rowScanner) (registry.Command, error) {
	var c registry.Command
	var binary int64
	var status string
	var created, expires int64
	var result []byte
	err := row.Scan(&c.ID, &c.DeviceID, &c.Name, &c.Payload, &binary, &status, &c.CreatedBy, &created, &expires, &result, &c.Edge)
	c.Binary, c.Status = binary != 0, registry.CommandStatus(status)
	c.CreatedAt, c.ExpiresAt, c.Result = fromMicros(created), fromMicros(expires), result
	return c, err
}

// openStatuses are the statuses that are not final, as SQL.
const openStatuses = `('queued', 'sent', 'delivered')`

// notify records that the device changed: inside the transaction on
// PostgreSQL (NOTIFY is delivered on commit, to every process listening).
func (r *DB) notify(w wtx, deviceID int64) error {
	if r.d.name != "postgres" {
		return nil
	}
	_, err := w.exec(`SELECT pg_notify('`+changesChannel+`', ?)`, strconv.FormatInt(deviceID, 10))
	return err
}

func (w wtx) addEvent(id int64, s registry.CommandStatus, at int64, detail string) error {
	_, err := w.exec(`INSERT INTO command_events (command_id, seq, status, at, detail)
		VALUES (?, (SELECT COUNT(*) FROM command_events WHERE command_id = ?), ?, ?, ?)`, id, id, string(s), at, detail)
	return err
}

// EnqueueCommand implements registry.Commands.
func (r *DB) EnqueueCommand(ctx context.Context, c registry.Command, maxPending int) (registry.Command, error) {
	var out registry.Command
	binary := 0
	if c.Binary {
		binary = 1
	}
	now := micros(r.now())
	if !c.CreatedAt.IsZero() {
		now = micros(c.CreatedAt)
	}
	err := r.write(ctx, func(w wtx) error {
		var n int
		if err := w.row(`SELECT COUNT(*) FROM commands WHERE device_id = ? AND status IN `+openStatuses, c.DeviceID).Scan(&n); err != nil {
			return err
		}
		if n >= maxPending {
			return registry.ErrQueueFull
		}
		var err error
		out, err = scanCommand(w.row(`INSERT INTO commands (device_id, name, payload, is_binary, status, created_by, created_at, expires_at, edge)
			VALUES (?, ?, ?, ?, 'queued', ?, ?, ?, '') RETURNING `+commandCols,
			c.DeviceID, c.Name, c.Payload, binary, c.CreatedBy, now, micros(c.ExpiresAt)))
		if err != nil {
			return err
		}
		if err := w.addEvent(out.ID, registry.CommandQueued, now, ""); err != nil {
			return err
		}
		out.History = []registry.CommandEvent{{Status: registry.CommandQueued, At: fromMicros(now)}}
		return r.notify(w, c.DeviceID)
	})
	if err != nil {
		if err == registry.ErrQueueFull {
			return out, fmt.Errorf("enqueue command: %w", err)
		}
		return out, r.wrap("enqueue command", err)
	}
	r.changes.publish(c.DeviceID)
	return out, nil
}

// history loads the events of the commands, in place.
func (r *DB) history(ctx context.Context, cs []registry.Command) error {
	if len(cs) == 0 {
		return nil
	}
	idx := make(map[int64]int, len(cs))
	args := make([]any, len(cs))
	marks := make([]string, len(cs))
	for i, c := range cs {
		idx[c.ID], args[i], marks[i] = i, c.ID, "?"
	}
	rows, err := r.db.QueryContext(ctx, r.d.rebind(`SELECT command_id, status, at, detail FROM command_events
		WHERE command_id IN (`+strings.Join(marks, ",")+`) ORDER BY command_id, seq`), args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id, at int64
		var e registry.CommandEvent
		var s string
		if err := rows.Scan(&id, &s, &at, &e.Detail); err != nil {
			return err
		}
		e.Status, e.At = registry.CommandStatus(s), fromMicros(at)
		i := idx[id]
		cs[i].History = append(cs[i].History, e)
	}
	return rows.Err()
}

// GetCommand implements registry.Commands.
func (r *DB) GetCommand(ctx context.Context, id int64) (registry.Command, error) {
	c, err := scanCommand(r.row(ctx, `SELECT `+commandCols+` FROM commands WHERE id = ?`, id))
	if err != nil {
		return c, r.wrap("get command", err)
	}
	cs := []registry.Command{c}
	if err := r.history(ctx, cs); err != nil {
		return c, r.wrap("get command history", err)
	}
	return cs[0], nil
}

func (r *DB) commandList(ctx context.Context, what, q string, args ...any) ([]registry.Command, error) {
	rows, err := r.rows(ctx, q, args...)
	if err != nil {
		return nil, r.wrap(what, err)
	}
	defer rows.Close()
	out := []registry.Command{}
	for rows.Next() {
		c, err := scanCommand(rows)
		if err != nil {
			return nil, r.wrap(what, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, r.wrap(what, err)
	}
	rows.Close()
	return out, r.wrap(what, r.history(ctx, out))
}

// ListCommands implements registry.Commands.
func (r *DB) ListCommands(ctx context.Context, deviceID int64, p registry.Page) ([]registry.Command, error) {
	return r.commandList(ctx, "list commands", `SELECT `+commandCols+` FROM commands WHERE device_id = ? AND id > ? ORDER BY id LIMIT ?`,
		deviceID, p.AfterID, p.Limit)
}

// PendingCommands implements registry.Commands.
func (r *DB) PendingCommands(ctx context.Context, deviceID int64, now time.Time, limit int) ([]registry.Command, error) {
	return r.commandList(ctx, "pending commands", `SELECT `+commandCols+` FROM commands
		WHERE device_id = ? AND status IN ('queued', 'sent') AND expires_at > ? ORDER BY id LIMIT ?`, deviceID, micros(now), limit)
}

// UpdateCommand implements registry.Commands.
func (r *DB) UpdateCommand(ctx context.Context, id int64, u registry.CommandUpdate) (registry.Command, error) {
	var out registry.Command
	at := micros(u.At)
	err := r.write(ctx, func(w wtx) error {
		c, err := scanCommand(w.row(`SELECT `+commandCols+` FROM commands WHERE id = ?`, id))
		if err != nil {
			return err
		}
		allowed := false
		for _, f := range u.From {
			allowed = allowed || c.Status == f
		}
		if !allowed {
			return &registry.PreconditionError{Reason: "command is " + string(c.Status)}
		}
		edge, result := c.Edge, c.Result
		if u.Edge != "" {
			edge = u.Edge
		}
		if u.Result != nil {
			result = u.Result
		}
		if _, err := w.exec(`UPDATE commands SET status = ?, edge = ?, result = ? WHERE id = ?`, string(u.To), edge, result, id); err != nil {
			return err
		}
		if err := w.addEvent(id, u.To, at, u.Detail); err != nil {
			return err
		}
		c.Status, c.Edge, c.Result = u.To, edge, result
		out = c
		return r.notify(w, c.DeviceID)
	})
	if err != nil {
		return out, r.wrap("update command", err)
	}
	r.changes.publish(out.DeviceID)
	cs := []registry.Command{out}
	if err := r.history(ctx, cs); err != nil {
		return out, r.wrap("command history", err)
	}
	return cs[0], nil
}

// ExpireCommands implements registry.Commands.
func (r *DB) ExpireCommands(ctx context.Context, now time.Time, limit int) ([]registry.Command, error) {
	var out []registry.Command
	at := micros(now)
	err := r.write(ctx, func(w wtx) error {
		out = out[:0]
		rows, err := w.rows(ctx, `SELECT `+commandCols+` FROM commands WHERE status IN `+openStatuses+` AND expires_at <= ? ORDER BY expires_at LIMIT ?`, at, limit)
		if err != nil {
			return err
		}
		for rows.Next() {
			c, err := scanCommand(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for i := range out {
			if _, err := w.exec(`UPDATE commands SET status = 'expired' WHERE id = ?`, out[i].ID); err != nil {
				return err
			}
			if err := w.addEvent(out[i].ID, registry.CommandExpired, at, "time to live passed"); err != nil {
				return err
			}
			out[i].Status = registry.CommandExpired
			if err := r.notify(w, out[i].DeviceID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, r.wrap("expire commands", err)
	}
	for _, c := range out {
		r.changes.publish(c.DeviceID)
	}
	return out, nil
}

// CountPendingCommands implements registry.Commands.
func (r *DB) CountPendingCommands(ctx context.Context) (int64, error) {
	var n int64
	err := r.row(ctx, `SELECT COUNT(*) FROM commands WHERE status IN `+openStatuses).Scan(&n)
	return n, r.wrap("count pending commands", err)
}

const stateCols = `device_id, connections, edge, online_since, last_seen, reported, reported_at, desired, desired_version, desired_at`

func scanState(row rowScanner) (registry.DeviceState, error) {
	var s registry.DeviceState
	var since, seen, rep, des int64
	var reported, desired sql.NullString
	err := row.Scan(&s.DeviceID, &s.Connections, &s.Edge, &since, &seen, &reported, &rep, &desired, &s.DesiredVersion, &des)
	if since != 0 {
		s.OnlineSince = fromMicros(since)
	}
	if seen != 0 {
		s.LastSeen = fromMicros(seen)
	}
	if rep != 0 {
		s.ReportedAt = fromMicros(rep)
	}
	if des != 0 {
		s.DesiredAt = fromMicros(des)
	}
	if reported.Valid {
		s.Reported = []byte(reported.String)
	}
	if desired.Valid {
		s.Desired = []byte(desired.String)
	}
	return s, err
}

// GetDeviceState implements registry.Commands. Connections counted by a
// process whose lease expired (it died without closing them) are not
// counted, swept or not (leases.go).
func (r *DB) GetDeviceState(ctx context.Context, deviceID int64) (registry.DeviceState, error) {
	s, err := scanState(r.row(ctx, `SELECT `+stateCols+` FROM device_state WHERE device_id = ?`, deviceID))
	if err == sql.ErrNoRows {
		return registry.DeviceState{DeviceID: deviceID}, nil
	}
	if err == nil && s.Connections > 0 {
		var gone int64
		if gone, err = r.expiredConnections(ctx, deviceID, r.now()); err == nil && gone > 0 {
			if s.Connections -= gone; s.Connections <= 0 {
				s.Connections, s.Edge, s.OnlineSince = 0, "", time.Time{}
			}
		}
	}
	return s, r.wrap("get device state", err)
}

// stateWrite runs one upsert of the device's state row and announces it.
func (r *DB) stateWrite(ctx context.Context, what string, deviceID int64, q string, args ...any) (registry.DeviceState, error) {
	var out registry.DeviceState
	err := r.write(ctx, func(w wtx) error {
		if _, err := w.exec(`INSERT INTO device_state (device_id) VALUES (?) ON CONFLICT (device_id) DO NOTHING`, deviceID); err != nil {
			return err
		}
		if q != "" {
			if _, err := w.exec(q, args...); err != nil {
				return err
			}
		}
		var err error
		if out, err = scanState(w.row(`SELECT `+stateCols+` FROM device_state WHERE device_id = ?`, deviceID)); err != nil {
			return err
		}
		return r.notify(w, deviceID)
	})
	if err != nil {
		return out, r.wrap(what, err)
	}
	r.changes.publish(deviceID)
	return out, nil
}

// DeviceConnected implements registry.Commands: the connection is counted
// on the device and as this handle's (its lease, leases.go).
func (r *DB) DeviceConnected(ctx context.Context, deviceID int64, edge string, at time.Time) error {
	t := micros(at)
	return r.connectionWrite(ctx, "device connected", deviceID, func(w wtx) (bool, error) {
		return true, r.countConnection(w, deviceID)
	}, `UPDATE device_state SET
		edge = CASE WHEN connections = 0 THEN ? ELSE edge END,
		online_since = CASE WHEN connections = 0 THEN ? ELSE online_since END,
		connections = connections + 1, last_seen = ? WHERE device_id = ?`, edge, t, t, deviceID)
}

// DeviceDisconnected implements registry.Commands. A connection this handle
// no longer counts (swept after its lease expired) only updates last seen.
func (r *DB) DeviceDisconnected(ctx context.Context, deviceID int64, at time.Time) error {
	return r.connectionWrite(ctx, "device disconnected", deviceID, func(w wtx) (bool, error) {
		counted, err := r.uncountConnection(w, deviceID)
		if err == nil && !counted {
			_, err = w.exec(`UPDATE device_state SET last_seen = ? WHERE device_id = ?`, micros(at), deviceID)
		}
		return counted, err
	}, `UPDATE device_state SET
		edge = CASE WHEN connections <= 1 THEN '' ELSE edge END,
		online_since = CASE WHEN connections <= 1 THEN 0 ELSE online_since END,
		connections = CASE WHEN connections <= 1 THEN 0 ELSE connections - 1 END, last_seen = ? WHERE device_id = ?`, micros(at), deviceID)
}

// connectionWrite upserts the device's state row, runs own (this handle's
// count) and, when it reports true, q; then announces the change.
func (r *DB) connectionWrite(ctx context.Context, what string, deviceID int64, own func(w wtx) (bool, error), q string, args ...any) error {
	err := r.write(ctx, func(w wtx) error {
		if _, err := w.exec(`INSERT INTO device_state (device_id) VALUES (?) ON CONFLICT (device_id) DO NOTHING`, deviceID); err != nil {
			return err
		}
		apply, err := own(w)
		if err != nil {
			return err
		}
		if apply {
			if _, err := w.exec(q, args...); err != nil {
				return err
			}
		}
		return r.notify(w, deviceID)
	})
	if err != nil {
		return r.wrap(what, err)
	}
	r.changes.publish(deviceID)
	return nil
}

// ResetConnections implements registry.Commands.
func (r *DB) ResetConnections(ctx context.Context) error {
	err := r.write(ctx, func(w wtx) error {
		if _, err := w.exec(`DELETE FROM device_connections`); err != nil {
			return err
		}
		if _, err := w.exec(`DELETE FROM connection_leases`); err != nil {
			return err
		}
		_, err := w.exec(`UPDATE device_state SET connections = 0, edge = '', online_since = 0 WHERE connections <> 0`)
		return err
	})
	return r.wrap("reset connections", err)
}

// TouchDevice implements registry.Commands.
func (r *DB) TouchDevice(ctx context.Context, deviceID int64, at time.Time) error {
	_, err := r.stateWrite(ctx, "touch device", deviceID, `UPDATE device_state SET last_seen = ? WHERE device_id = ? AND last_seen < ?`,
		micros(at), deviceID, micros(at))
	return err
}

// TouchDevices implements registry.Commands: one transaction, two
// statements and (PostgreSQL) one notification per batchSize devices,
// where TouchDevice takes four statements per device.
func (r *DB) TouchDevices(ctx context.Context, deviceIDs []int64, at time.Time) error {
	if len(deviceIDs) == 0 {
		return nil
	}
	t := micros(at)
	err := r.write(ctx, func(w wtx) error {
		for rest := deviceIDs; len(rest) > 0; {
			n := min(len(rest), batchSize)
			chunk := rest[:n]
			rest = rest[n:]
			in := strings.TrimSuffix(strings.Repeat("?,", n), ",")
			args := make([]any, 2, n+2)
			args[0], args[1] = t, t
			ids := make([]string, n)
			for i, id := range chunk {
				args = append(args, id)
				ids[i] = strconv.FormatInt(id, 10)
			}
			if _, err := w.exec(`INSERT INTO device_state (device_id) SELECT id FROM devices WHERE id IN (`+in+`)
				ON CONFLICT (device_id) DO NOTHING`, args[2:]...); err != nil {
				return err
			}
			if _, err := w.exec(`UPDATE device_state SET last_seen = ? WHERE last_seen < ? AND device_id IN (`+in+`)`, args...); err != nil {
				return err
			}
			if r.d.name == "postgres" { // listen parses the comma-separated list
				if _, err := w.exec(`SELECT pg_notify('`+changesChannel+`', ?)`, strings.Join(ids, ",")); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return r.wrap("touch devices", err)
	}
	for _, id := range deviceIDs {
		r.changes.publish(id)
	}
	return nil
}

// SetReportedAttributes implements registry.Commands.
func (r *DB) SetReportedAttributes(ctx context.Context, deviceID int64, doc []byte, at time.Time) (registry.DeviceState, error) {
	t := micros(at)
	return r.stateWrite(ctx, "set reported attributes", deviceID, `UPDATE device_state SET reported = ?, reported_at = ?,
		last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END WHERE device_id = ?`, string(doc), t, t, t, deviceID)
}

// SetDesiredAttributes implements registry.Commands.
func (r *DB) SetDesiredAttributes(ctx context.Context, deviceID int64, doc []byte, at time.Time) (registry.DeviceState, error) {
	return r.stateWrite(ctx, "set desired attributes", deviceID, `UPDATE device_state SET desired = ?, desired_at = ?,
		desired_version = desired_version + 1 WHERE device_id = ?`, string(doc), micros(at), deviceID)
}

// WatchChanges implements registry.Commands: writes of this process are
// announced in-process; on PostgreSQL a LISTEN connection adds those of
// every other process (fn(0) after it had to reconnect).
func (r *DB) WatchChanges(ctx context.Context, fn func(deviceID int64)) error {
	ch, cancel := r.changes.subscribe()
	defer cancel()
	if r.d.name == "postgres" {
		go r.listen(ctx, fn)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case id := <-ch:
			fn(id)
		}
	}
}

// listen relays PostgreSQL notifications until ctx ends, reconnecting
// after a failure (and then calling fn(0): notifications may be lost).
func (r *DB) listen(ctx context.Context, fn func(int64)) {
	first := true
	for ctx.Err() == nil {
		err := r.listenOnce(ctx, fn, first)
		first = false
		if ctx.Err() != nil {
			return
		}
		_ = err // the next attempt says the same; fn(0) makes callers re-read
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}

func (r *DB) listenOnce(ctx context.Context, fn func(int64), first bool) error {
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		if _, err := pc.Exec(ctx, "LISTEN "+changesChannel); err != nil {
			return err
		}
		if !first {
			fn(0)
		}
		for {
			n, err := pc.WaitForNotification(ctx)
			if err != nil {
				// The connection is not reusable after an interrupted wait.
				_ = pc.Close(context.Background())
				return err
			}
			for _, id := range notifiedIDs(n.Payload) {
				fn(id)
			}
		}
	})
}

// notifiedIDs parses a changes notification: one device id, or the
// comma-separated ids of a TouchDevices batch.
func notifiedIDs(payload string) []int64 {
	var ids []int64
	for _, f := range strings.Split(payload, ",") {
		if id, err := strconv.ParseInt(f, 10, 64); err == nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// broadcaster fans device ids out to in-process watchers; a slow watcher
// gets a 0 (re-read everything) instead of blocking writers.
type broadcaster struct {
	mu   sync.Mutex
	subs map[chan int64]struct{}
}

func (b *broadcaster) subscribe() (chan int64, func()) {
	ch := make(chan int64, 1024)
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[chan int64]struct{}{}
	}
	b.subs[ch] = struct{}{}
	b.mu.Unlock()
	return ch, func() {
		b.mu.Lock()
		delete(b.subs, ch)
		b.mu.Unlock()
	}
}

func (b *broadcaster) publish(id int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.subs {
		select {
		case ch <- id:
		default:
			select {
			case ch <- 0:
			default:
			}
		}
	}
}
