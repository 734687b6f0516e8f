// Package sqlitewal keeps the write-ahead log of an SQLite database bounded.
//
// SQLite's automatic checkpoints are PASSIVE: they copy what they can into
// the database but never wait for readers, and the log is only rewound from
// its start when no reader is using it. Under a steady stream of writes and
// reads that moment never comes and the log grows without bound (checkpoint
// starvation). A Keeper runs TRUNCATE checkpoints from the database's single
// writer, between its transactions: once the log passes Config.MaxBytes, and
// whenever the writer has been idle for a tick. A TRUNCATE checkpoint waits
// (busy_timeout) for the readers of older snapshots to finish, which is
// short because readers never hold a transaction across requests, and then
// empties the log.
//
// Bound: the log is checked after every commit, so it never exceeds MaxBytes
// plus one commit's worth of pages, unless a checkpoint could not finish
// within the busy timeout (then Checkpoints reports it and the next commit
// tries again).
package sqlitewal

import (
	"context"
	"database/sql"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// DefaultMaxBytes is the log size that triggers a checkpoint.
const DefaultMaxBytes = 16 << 20

// Config tunes a Keeper.
type Config struct {
	// MaxBytes is the log size after which the next commit is followed by
	// a TRUNCATE checkpoint (default DefaultMaxBytes).
	MaxBytes int64
	// Idle is how long the writer must be idle before a non-empty log is
	// checkpointed anyway (default 1s).
	Idle time.Duration
}

// Keeper checkpoints one database. Its methods other than Size and Stats
// must be called from the writer goroutine only.
type Keeper struct {
	log  *slog.Logger
	db   *sql.DB
	path string // of the -wal file
	cfg  Config

	ticker *time.Ticker
	dirty  bool // commits since the last checkpoint

	done, failed, logged atomic.Int64
}

// New returns a keeper of the database file at dbPath, checkpointing through
// db (a pool of the writer's connections).
func New(log *slog.Logger, db *sql.DB, dbPath string, cfg Config) *Keeper {
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultMaxBytes
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Second
	}
	return &Keeper{log: log, db: db, path: dbPath + "-wal", cfg: cfg, ticker: time.NewTicker(cfg.Idle)}
}

// Pragma is the DSN parameter that makes SQLite truncate a log it rewinds
// to at most limit bytes.
func Pragma(limit int64) string {
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	return "&_pragma=journal_size_limit(" + itoa(limit) + ")"
}

func itoa(v int64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			return string(b[i:])
		}
	}
}

// Tick fires every Idle; the writer calls Idle when it fires while no write
// waits.
func (k *Keeper) Tick() <-chan time.Time {
	if k == nil {
		return nil
	}
	return k.ticker.C
}

// AfterCommit is called by the writer after each commit: it checkpoints
// once the log passed MaxBytes.
func (k *Keeper) AfterCommit() {
	if k == nil {
		return
	}
	k.dirty = true
	if k.Size() > k.cfg.MaxBytes {
		k.Checkpoint()
	}
}

// Idle is called by the writer when a tick found it idle: a log written
// since the last checkpoint is emptied.
func (k *Keeper) Idle() {
	if k == nil || !k.dirty {
		return
	}
	k.Checkpoint()
}

// Checkpoint runs a TRUNCATE checkpoint now and reports whether it emptied
// the log.
func (k *Keeper) Checkpoint() bool {
	before, start := k.Size(), time.Now()
	var busy, logPages, done int64
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := k.db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logPages, &done)
	if err != nil || busy != 0 {
		k.failed.Add(1)
		k.log.Warn("wal checkpoint did not complete", "wal", k.path, "busy", busy == 1, "log_pages", logPages, "checkpointed_pages", done, "err", err)
		return false
	}
	k.log.Debug("wal checkpoint", "wal", k.path, "bytes", before, "duration_ms", time.Since(start).Milliseconds())
	k.done.Add(1)
	k.logged.Add(before)
	k.dirty = false
	return true
}

// Size returns the current size of the log in bytes (0 when absent).
func (k *Keeper) Size() int64 {
	if k == nil {
		return 0
	}
	st, err := os.Stat(k.path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Stats returns how many checkpoints completed and how many could not.
func (k *Keeper) Stats() (done, failed int64) {
	if k == nil {
		return 0, 0
	}
	return k.done.Load(), k.failed.Load()
}

// Logged returns how many bytes of log the completed checkpoints emptied.
func (k *Keeper) Logged() int64 {
	if k == nil {
		return 0
	}
	return k.logged.Load()
}

// Stop releases the keeper's ticker.
func (k *Keeper) Stop() {
	if k != nil {
		k.ticker.Stop()
	}
}
