// Package storeembedded is the default time-series store: one SQLite file in
// the data dir (pure-Go modernc.org/sqlite) in WAL mode, and a single writer
// goroutine that group-commits concurrent Write calls: one transaction and
// one fsync per group, so every acknowledged reading survives kill -9 and a
// power loss. Writes behind the write-ahead log bus (store.DeferSync) skip
// the fsync per commit: the log keeps their records until Sync has made
// them durable.
package storeembedded

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // database/sql driver "sqlite"

	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/sqlitewal"
	"github.com/iotplatform/iotplatform/internal/store"
)

// Config tunes the store.
type Config struct {
	// Path of the database file; created with its directory if missing.
	Path string
	// MaxGroup bounds how many readings one commit takes (default 20,000).
	MaxGroup int
	// WALMaxBytes is the write-ahead log size after which the committer
	// runs a TRUNCATE checkpoint (default sqlitewal.DefaultMaxBytes).
	WALMaxBytes int64
}

// Store implements store.Store on SQLite.
type Store struct {
	log  *slog.Logger
	cfg  Config
	w    *sql.DB // single connection, used only by the committer
	r    *sql.DB // readers (WAL lets them run beside the writer)
	reqs chan *writeReq
	// jobs are retention deletes, run by the committer between commits.
	jobs chan *job
	// expireCursor is the sensor the last Expire call stopped after.
	expireCursor int64
	quit         chan struct{}
	done         chan struct{}
	feed         *store.Feed
	// dirty is set when minutes may wait for compaction; lastCompact is
	// when the last compaction pass ended (committer goroutine only).
	dirty       bool
	lastCompact time.Time
	// lastOpenCompact is when a pass last compacted every dirty minute,
	// including those that have not ended.
	lastOpenCompact time.Time
	// raw is the committer's connection for inserts and compaction
	// (writer.go).
	raw *writer
	// wal keeps the write-ahead log bounded (committer goroutine only).
	wal *sqlitewal.Keeper
	// walFile is SQLite's WAL file, opened for its fsyncs (syncWAL);
	// walSyncs counts them (tests).
	walMu    sync.Mutex
	walFile  *os.File
	walSyncs atomic.Int64
}

// compactEvery bounds how often idle compaction passes run; compactOpenEvery
// how often they include minutes that have not ended yet (by the wall
// clock): such a minute is recomputed from all its raw rows each time, so
// under steady ingest folding it every pass rescanned a growing minute
// every second (up to 60 × its rows per minute). Aggregate is exact either
// way: it reads a dirty minute's raw rows.
const (
	compactEvery     = time.Second
	compactOpenEvery = 15 * time.Second
)

// passBound is the start bound of the minutes a pass at now compacts: those
// that started before the current minute, or all (math.MaxInt64) when the
// last full pass is compactOpenEvery old.
func passBound(now, lastFull time.Time) (before int64, all bool) {
	if now.Sub(lastFull) >= compactOpenEvery {
		return math.MaxInt64, true
	}
	return floorTo(now.UnixNano(), rollupG), false
}

// compactPass compacts dirty minutes until none is left or a write waits.
func (s *Store) compactPass() {
	now := time.Now()
	defer func() {
		s.lastCompact = time.Now()
		s.wal.AfterCommit()
	}()
	before, all := passBound(now, s.lastOpenCompact)
	for {
		n, err := s.compactBefore(64, before)
		if err != nil {
			s.log.Warn("rollup compaction failed", "err", err)
			return
		}
		if n == 0 {
			if all {
				s.dirty = false
				s.lastOpenCompact = now
			}
			return
		}
		if len(s.reqs) > 0 {
			return
		}
	}
}

type writeReq struct {
	rs  []store.Reading
	dls []deadletter.Letter
	// deferred: durable once Sync returns (store.DeferSync), not at commit.
	deferred bool
	errc     chan error
}

const schema = `
CREATE TABLE IF NOT EXISTS readings (
  sensor_id INTEGER NOT NULL,
  ts        INTEGER NOT NULL,
  seq       INTEGER NOT NULL DEFAULT 0,
  device_id INTEGER NOT NULL,
  kind      INTEGER NOT NULL,
  v,
  recv      INTEGER NOT NULL,
  proto     TEXT NOT NULL,
  PRIMARY KEY (sensor_id, ts, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (
  id        INTEGER PRIMARY KEY AUTOINCREMENT,
  device_id INTEGER NOT NULL,
  sensor_id INTEGER NOT NULL,
  protocol  TEXT NOT NULL,
  reason    TEXT NOT NULL,
  payload   BLOB,
  time_ns   INTEGER NOT NULL,
  dl_key    TEXT
);
CREATE INDEX IF NOT EXISTS dead_letters_device ON dead_letters (device_id, id);
`

// deadLetterKeys keeps one letter per key (NULL keys never collide).
const deadLetterKeys = `CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_key ON dead_letters (dl_key);`

// migrateDeadLetterKey adds dl_key to a dead_letters table created before it.
func migrateDeadLetterKey(ctx context.Context, w *sql.DB) error {
	var n int
	if err := w.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('dead_letters')").Scan(&n); err != nil {
		return fmt.Errorf("inspect store schema: %w", err)
	}
	if n == 0 {
		return nil // created below with the column
	}
	if err := w.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('dead_letters') WHERE name = 'dl_key'").Scan(&n); err != nil {
		return fmt.Errorf("inspect store schema: %w", err)
	}
	if n > 0 {
		return nil
	}
	if _, err := w.ExecContext(ctx, "ALTER TABLE dead_letters ADD COLUMN dl_key TEXT"); err != nil {
		return fmt.Errorf("migrate store schema: %w", err)
	}
	return nil
}

// Open opens (creating if needed) the store at cfg.Path.
func Open(ctx context.Context, log *slog.Logger, cfg Config) (*Store, error) {
	if cfg.MaxGroup <= 0 {
		cfg.MaxGroup = 20000
	}
	if err := sqlitewal.Private(cfg.Path); err != nil { // every device's readings
		return nil, fmt.Errorf("open store: %w", err)
	}
	dsn := "file:" + cfg.Path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=busy_timeout(10000)&_txlock=immediate" +
		sqlitewal.Pragma(cfg.WALMaxBytes)
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	w.SetMaxOpenConns(1)
	if err := errors.Join(migrateSeq(ctx, w), migrateDeadLetterKey(ctx, w)); err != nil {
		w.Close()
		return nil, err
	}
	if _, err := w.ExecContext(ctx, schema+deadLetterKeys+rollupSchema+retentionSchema); err != nil {
		w.Close()
		return nil, fmt.Errorf("create store schema: %w", err)
	}
	raw, err := openWriter(cfg.Path, cfg.WALMaxBytes, 10000)
	if err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", "file:"+cfg.Path+"?_pragma=busy_timeout(10000)&_pragma=query_only(1)")
	if err != nil {
		raw.close()
		w.Close()
		return nil, fmt.Errorf("open store readers: %w", err)
	}
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	s := &Store{
		log: log, cfg: cfg, w: w, r: r,
		reqs:  make(chan *writeReq, 1024),
		jobs:  make(chan *job),
		quit:  make(chan struct{}),
		done:  make(chan struct{}),
		feed:  store.NewFeed(),
		dirty: true,
		raw:   raw,
		wal:   sqlitewal.New(log, w, cfg.Path, sqlitewal.Config{MaxBytes: cfg.WALMaxBytes}),
	}
	go s.commitLoop()
	return s, nil
}

// WALSize returns the size in bytes of the write-ahead log.
func (s *Store) WALSize() int64 { return s.wal.Size() }

// WALCheckpoints returns how many write-ahead log checkpoints completed and
// how many could not.
func (s *Store) WALCheckpoints() (done, failed int64) { return s.wal.Stats() }

// WALLogged returns how many bytes of write-ahead log the completed
// checkpoints emptied.
func (s *Store) WALLogged() int64 { return s.wal.Logged() }

// Feed returns the live feed of committed readings.
func (s *Store) Feed() *store.Feed { return s.feed }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.r.PingContext(ctx) }

// Close stops the committer and closes the database.
func (s *Store) Close() error {
	close(s.quit)
	<-s.done
	s.wal.Stop()
	s.walMu.Lock()
	var ferr error
	if s.walFile != nil {
		ferr = s.walFile.Close()
		s.walFile = nil
	}
	s.walMu.Unlock()
	return errors.Join(s.raw.close(), s.w.Close(), s.r.Close(), ferr)
}

var errClosed = errors.New("store closed")

// Write stores rs durably; concurrent callers share one commit.
func (s *Store) Write(ctx context.Context, rs []store.Reading) error {
	if len(rs) == 0 {
		return nil
	}
	return s.submit(ctx, &writeReq{rs: rs, deferred: store.SyncDeferred(ctx), errc: make(chan error, 1)})
}

// WriteDeadLetters stores dead letters durably.
func (s *Store) WriteDeadLetters(ctx context.Context, dls []deadletter.Letter) error {
	if len(dls) == 0 {
		return nil
	}
	return s.submit(ctx, &writeReq{dls: dls, deferred: store.SyncDeferred(ctx), errc: make(chan error, 1)})
}

// Sync makes every write committed so far durable, deferred ones included
// (store.Syncer): an fsync of SQLite's WAL file. Frames a checkpoint has
// already moved into the database file were synced there by the checkpoint.
func (s *Store) Sync(context.Context) error {
	return s.syncWAL()
}

// syncWAL fsyncs the WAL file (the raw writer runs synchronous=NORMAL).
// The file keeps its inode while the store is open (checkpoints truncate or
// rewrite it in place; SQLite deletes it only when the last connection
// closes), so it is opened once.
func (s *Store) syncWAL() error {
	s.walMu.Lock()
	defer s.walMu.Unlock()
	if s.walFile == nil {
		f, err := os.Open(s.cfg.Path + "-wal")
		if errors.Is(err, os.ErrNotExist) {
			return nil // no WAL: everything is in the database file
		}
		if err != nil {
			return fmt.Errorf("open store WAL: %w", err)
		}
		s.walFile = f
	}
	if err := s.walFile.Sync(); err != nil {
		return fmt.Errorf("sync store WAL: %w", err)
	}
	s.walSyncs.Add(1)
	return nil
}

func (s *Store) submit(ctx context.Context, req *writeReq) error {
	select {
	case s.reqs <- req:
	case <-s.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.errc:
		return err
	case <-s.done:
		select {
		case err := <-req.errc:
			return err
		default:
			return errClosed
		}
	case <-ctx.Done():
		// The commit may still happen; the caller redelivers and the
		// deterministic ids make that harmless.
		return ctx.Err()
	}
}

func (s *Store) commitLoop() {
	defer close(s.done)
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case j := <-s.jobs:
			s.doJob(j)
			continue
		case <-s.quit:
			s.drainClosed()
			return
		case <-s.wal.Tick():
			s.wal.Idle()
			continue
		default:
			// Idle: fold dirty minutes into rollups, at most one pass per
			// compactEvery (a hot minute is rescanned at that rate, not
			// after every commit), a slice at a time so a new write waits
			// at most one slice.
			var wake <-chan time.Time
			if s.dirty {
				if wait := compactEvery - time.Since(s.lastCompact); wait > 0 {
					wake = time.After(wait)
				} else {
					s.compactPass()
					continue
				}
			}
			select {
			case first = <-s.reqs:
			case j := <-s.jobs:
				s.doJob(j)
				continue
			case <-s.quit:
				s.drainClosed()
				return
			case <-wake:
				continue
			case <-s.wal.Tick():
				s.wal.Idle()
				continue
			}
		}
		group := []*writeReq{first}
		n := len(first.rs) + len(first.dls)
	gather:
		for n < s.cfg.MaxGroup {
			select {
			case r := <-s.reqs:
				group = append(group, r)
				n += len(r.rs) + len(r.dls)
			default:
				break gather
			}
		}
		err := s.commit(group)
		if err == nil && slices.ContainsFunc(group, func(r *writeReq) bool { return !r.deferred }) {
			err = s.syncWAL()
		}
		s.dirty = s.dirty || err == nil
		if err != nil {
			s.log.Error("store commit failed", "readings", n, "err", err)
		}
		s.wal.AfterCommit()
		for _, r := range group {
			r.errc <- err
		}
		if err == nil {
			for _, r := range group {
				s.feed.Publish(r.rs)
			}
		}
	}
}

func (s *Store) drainClosed() {
	for {
		select {
		case r := <-s.reqs:
			r.errc <- errClosed
		default:
			return
		}
	}
}

// migrateSeq rebuilds a readings table created before readings had a seq
// (identity (sensor_id, ts)) into the current shape; its rows get seq 0.
func migrateSeq(ctx context.Context, w *sql.DB) error {
	var n int
	if err := w.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'readings'").Scan(&n); err != nil {
		return fmt.Errorf("inspect store schema: %w", err)
	}
	if n == 0 {
		return nil
	}
	if err := w.QueryRowContext(ctx, "SELECT count(*) FROM pragma_table_info('readings') WHERE name = 'seq'").Scan(&n); err != nil {
		return fmt.Errorf("inspect store schema: %w", err)
	}
	if n > 0 {
		return nil
	}
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate store schema: %w", err)
	}
	defer tx.Rollback()
	for _, q := range []string{
		"ALTER TABLE readings RENAME TO readings_noseq",
		strings.SplitN(schema, ";", 2)[0],
		"INSERT INTO readings (sensor_id, ts, seq, device_id, kind, v, recv, proto) SELECT sensor_id, ts, 0, device_id, kind, v, recv, proto FROM readings_noseq",
		"DROP TABLE readings_noseq",
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("migrate store schema: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate store schema: %w", err)
	}
	return nil
}

// commit writes a group's readings and dead letters, and marks the minutes
// it touched dirty, in one transaction (one fsync) on the raw writer.
func (s *Store) commit(group []*writeReq) error {
	touched := map[slot]struct{}{}
	w := s.raw
	err := w.tx(func() error {
		for _, req := range group {
			var last slot
			for i := range req.rs {
				r := &req.rs[i]
				if k := (slot{r.SensorID, floorTo(r.TimeNS, rollupG)}); k != last || i == 0 {
					touched[k], last = struct{}{}, k
				}
			}
			if err := w.insert(req.rs); err != nil {
				return fmt.Errorf("insert readings: %w", err)
			}
			for _, d := range req.dls {
				st := w.dead
				key := st.BindNull(7) // no key: always a new letter
				if d.Key != "" {
					key = st.BindText(7, d.Key) // a letter written again is kept once
				}
				err := errors.Join(st.BindInt64(1, d.DeviceID), st.BindInt64(2, d.SensorID), st.BindText(3, d.Protocol),
					st.BindText(4, d.Reason), st.BindBlob(5, d.Payload), st.BindInt64(6, d.TimeNS), key)
				if err == nil {
					err = st.Exec()
				}
				if err != nil {
					return fmt.Errorf("insert dead letter: %w", err)
				}
			}
		}
		for d := range touched {
			err := errors.Join(w.dirty.BindInt64(1, d.sensor), w.dirty.BindInt64(2, d.t))
			if err == nil {
				err = w.dirty.Exec()
			}
			if err != nil {
				return fmt.Errorf("mark rollups dirty: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("commit readings: %w", err)
	}
	return nil
}

func valueFrom(kind int64, raw any) store.Value {
	v := store.Value{Kind: store.Kind(kind)}
	switch v.Kind {
	case store.KindDouble:
		switch x := raw.(type) {
		case float64:
			v.Double = x
		case int64:
			v.Double = float64(x)
		}
	case store.KindLong:
		v.Long, _ = raw.(int64)
	case store.KindBool:
		n, _ := raw.(int64)
		v.Bool = n != 0
	case store.KindString:
		v.Str = asString(raw)
	case store.KindObject:
		v.Object = []byte(asString(raw))
	}
	return v
}

func asString(raw any) string {
	switch x := raw.(type) {
	case string:
		return x
	case []byte:
		return string(x)
	}
	return ""
}

const readingCols = "sensor_id, ts, seq, device_id, kind, v, recv, proto"

func scanReading(sc interface{ Scan(...any) error }) (store.Reading, error) {
	var r store.Reading
	var kind int64
	var raw any
	if err := sc.Scan(&r.SensorID, &r.TimeNS, &r.Seq, &r.DeviceID, &kind, &raw, &r.ReceiveTimeNS, &r.Protocol); err != nil {
		return r, fmt.Errorf("scan reading: %w", err)
	}
	r.Value = valueFrom(kind, raw)
	return r, nil
}

// List returns a page of readings of one sensor.
func (s *Store) List(ctx context.Context, q store.ListQuery) ([]store.Reading, bool, error) {
	limit := store.ClampLimit(q.Limit, 100)
	to := q.ToNS
	if to == 0 {
		to = 1<<63 - 1
	}
	dir, after := "ASC", "(ts, seq) > (?, ?)"
	if q.Order == store.Descending {
		dir, after = "DESC", "(ts, seq) < (?, ?)"
	}
	where := "sensor_id = ? AND ts >= ? AND ts < ?"
	args := []any{q.SensorID, q.FromNS, to}
	if q.HasAfter {
		where += " AND " + after
		args = append(args, q.AfterNS, q.AfterSeq)
	}
	rows, err := s.r.QueryContext(ctx,
		"SELECT "+readingCols+" FROM readings WHERE "+where+" ORDER BY ts "+dir+", seq "+dir+" LIMIT ?",
		append(args, limit+1)...)
	if err != nil {
		return nil, false, fmt.Errorf("list readings: %w", err)
	}
	defer rows.Close()
	out := make([]store.Reading, 0, min(limit+1, 1024))
	for rows.Next() {
		r, err := scanReading(rows)
		if err != nil {
			return nil, false, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("list readings: %w", err)
	}
	more := len(out) > limit
	if more {
		out = out[:limit]
	}
	return out, more, nil
}

// Latest returns the newest reading of each sensor.
func (s *Store) Latest(ctx context.Context, sensorIDs []int64) ([]store.Reading, error) {
	out := make([]store.Reading, 0, len(sensorIDs))
	for _, id := range sensorIDs {
		row := s.r.QueryRowContext(ctx, "SELECT "+readingCols+" FROM readings WHERE sensor_id = ? ORDER BY ts DESC, seq DESC LIMIT 1", id)
		r, err := scanReading(row)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("latest reading of sensor %d: %w", id, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// DeleteSensor removes the sensor's readings.
func (s *Store) DeleteSensor(ctx context.Context, sensorID int64) error {
	for _, table := range []string{"readings", "rollups", "rollups_dirty", "rollups_hour", "horizons"} {
		if _, err := s.w.ExecContext(ctx, "DELETE FROM "+table+" WHERE sensor_id = ?", sensorID); err != nil {
			return fmt.Errorf("delete readings of sensor %d: %w", sensorID, err)
		}
	}
	return nil
}

// ListDeadLetters returns dead letters newest first.
func (s *Store) ListDeadLetters(ctx context.Context, q store.DeadLetterQuery) ([]store.DeadLetter, string, error) {
	limit := store.ClampLimit(q.Limit, 100)
	where := []string{"1=1"}
	var args []any
	if q.PageToken != "" {
		after, err := strconv.ParseInt(q.PageToken, 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("%w: bad page token", store.ErrInvalid)
		}
		where = append(where, "id < ?")
		args = append(args, after)
	}
	if q.SensorID != 0 {
		where = append(where, "sensor_id = ?")
		args = append(args, q.SensorID)
	}
	if len(q.DeviceIDs) > 0 {
		where = append(where, "device_id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(q.DeviceIDs)), ",")+")")
		for _, id := range q.DeviceIDs {
			args = append(args, id)
		}
	}
	args = append(args, limit+1)
	rows, err := s.r.QueryContext(ctx,
		"SELECT id, device_id, sensor_id, protocol, reason, payload, time_ns FROM dead_letters WHERE "+
			strings.Join(where, " AND ")+" ORDER BY id DESC LIMIT ?", args...)
	if err != nil {
		return nil, "", fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []store.DeadLetter
	var lastID int64
	for rows.Next() {
		var d store.DeadLetter
		if err := rows.Scan(&lastID, &d.DeviceID, &d.SensorID, &d.Protocol, &d.Reason, &d.Payload, &d.TimeNS); err != nil {
			return nil, "", fmt.Errorf("scan dead letter: %w", err)
		}
		d.ID = strconv.FormatInt(lastID, 10)
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list dead letters: %w", err)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].ID
	}
	return out, next, nil
}

var _ store.Store = (*Store)(nil)
