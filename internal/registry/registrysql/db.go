// Package registrysql implements registry.Registry on SQL databases: SQLite
// (pure Go, the embedded default) and PostgreSQL, with embedded migrations.
package registrysql

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
	_ "modernc.org/sqlite"             // registers the "sqlite" driver

	"github.com/iotplatform/iotplatform/internal/cache"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/sqlitewal"
)

//go:embed migrations
var migrations embed.FS

type dialect struct {
	name     string
	rebind   func(string) string
	isUnique func(error) bool
}

var sqliteDialect = dialect{
	name:   "sqlite",
	rebind: func(q string) string { return q },
	isUnique: func(err error) bool {
		return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
	},
}

var postgresDialect = dialect{
	name: "postgres",
	rebind: func(q string) string {
		var b strings.Builder
		n := 0
		for _, r := range q {
			if r == '?' {
				n++
				b.WriteString("$" + strconv.Itoa(n))
				continue
			}
			b.WriteRune(r)
		}
		return b.String()
	},
	isUnique: func(err error) bool {
		var pe *pgconn.PgError
		return errors.As(err, &pe) && pe.Code == "23505"
	},
}

// DB is a registry.Registry over database/sql.
type DB struct {
	db  *sql.DB
	d   dialect
	now func() time.Time
	// stmts caches prepared statements by query text: parsing SQL costs
	// more than running these small queries.
	stmts sync.Map // string -> *sql.Stmt
	// cache is set only when this process is the registry's sole writer.
	cache *readCache
	// raw serves hot point reads without database/sql (SQLite only; nil on
	// PostgreSQL).
	raw *rawReads
	// gc group-commits writes (SQLite only; nil on PostgreSQL).
	gc *groupCommitter
	// wal keeps the SQLite write-ahead log bounded (nil on PostgreSQL).
	wal *sqlitewal.Keeper
	// changes announces command and device state writes (commands.go).
	changes broadcaster
	// owner is this handle's id in connection_leases (leases.go).
	owner string
	// closed makes Close run once.
	closed sync.Once
}

var _ registry.Registry = (*DB)(nil)

// SQLiteConfig tunes the SQLite registry.
type SQLiteConfig struct {
	// WALMaxBytes is the write-ahead log size after which the writer runs
	// a TRUNCATE checkpoint (default sqlitewal.DefaultMaxBytes).
	WALMaxBytes int64
	// Log receives checkpoint warnings (default: discarded).
	Log *slog.Logger
	// CacheEntries bounds the read cache (an LRU) in entries: 0 means
	// DefaultCacheEntries, a negative value disables the cache.
	CacheEntries int
	// DatabaseSQLReads reads through database/sql only, without the raw
	// read connections (comparison benchmarks and tests).
	DatabaseSQLReads bool
}

// OpenSQLite opens (creating if needed) the SQLite registry at path.
func OpenSQLite(ctx context.Context, path string) (*DB, error) {
	return OpenSQLiteConfig(ctx, path, SQLiteConfig{})
}

// OpenSQLiteConfig is OpenSQLite with settings.
func OpenSQLiteConfig(ctx context.Context, path string, cfg SQLiteConfig) (*DB, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// mmap_size: readers map the file instead of copying pages through
	// read(2), so a lookup in a registry of millions of rows costs about
	// what it costs in a small one.
	if err := sqlitewal.Private(path); err != nil { // password hashes, key generations
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	dsn := "file:" + path + "?_pragma=foreign_keys(1)&_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)&_txlock=immediate" +
		"&_pragma=mmap_size(1073741824)" + sqlitewal.Pragma(cfg.WALMaxBytes)
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open sqlite: %w", err)
	}
	// Keep every connection: a reopened one pays for opening the file and
	// preparing its statements again (database/sql keeps only 2 idle).
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	r, err := open(ctx, db, sqliteDialect)
	if err != nil {
		return nil, err
	}
	// Writes go through one committer on their own pool: one connection it
	// keeps for its transactions and a spare one for checkpoints.
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	w.SetMaxOpenConns(2)
	w.SetMaxIdleConns(2)
	w.SetConnMaxIdleTime(0)
	r.wal = sqlitewal.New(cfg.Log, w, path, sqlitewal.Config{MaxBytes: cfg.WALMaxBytes})
	if r.gc, err = newGroupCommitter(ctx, r, w, r.wal); err != nil {
		r.wal.Stop()
		w.Close()
		db.Close()
		return nil, err
	}
	if !cfg.DatabaseSQLReads {
		if r.raw, err = openRawReads(path); err != nil {
			r.Close()
			return nil, fmt.Errorf("open sqlite readers: %w", err)
		}
	}
	// Writes in this process drop the rows they change from the cache; the
	// TTL bounds the staleness if another process shares the data dir.
	if cfg.CacheEntries == 0 {
		cfg.CacheEntries = DefaultCacheEntries
	}
	r.cache = newReadCache(cfg.CacheEntries, cache.TTL)
	return r, nil
}

// WALSize returns the size in bytes of the SQLite write-ahead log (0 on
// PostgreSQL).
func (r *DB) WALSize() int64 { return r.wal.Size() }

// WALCheckpoints returns how many write-ahead log checkpoints completed and
// how many could not (0, 0 on PostgreSQL).
func (r *DB) WALCheckpoints() (done, failed int64) { return r.wal.Stats() }

// WALLogged returns how many bytes of write-ahead log the completed
// checkpoints emptied (0 on PostgreSQL).
func (r *DB) WALLogged() int64 { return r.wal.Logged() }

// OpenPostgres connects to the PostgreSQL registry at dsn.
func OpenPostgres(ctx context.Context, dsn string) (*DB, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(20)
	return open(ctx, db, postgresDialect)
}

func open(ctx context.Context, db *sql.DB, d dialect) (*DB, error) {
	r := &DB{db: db, d: d, now: time.Now, owner: newOwner()}
	if err := r.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return r, nil
}

// migrate applies every embedded migration not yet recorded, each in a
// transaction.
func (r *DB) migrate(ctx context.Context) error {
	if _, err := r.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	dir := "migrations/" + r.d.name
	entries, err := fs.ReadDir(migrations, dir)
	if err != nil {
		return fmt.Errorf("read migrations: %w", err)
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	for _, e := range entries {
		v, err := strconv.Atoi(strings.SplitN(e.Name(), "_", 2)[0])
		if err != nil {
			return fmt.Errorf("migration %s: bad name", e.Name())
		}
		body, err := migrations.ReadFile(dir + "/" + e.Name())
		if err != nil {
			return fmt.Errorf("read migration: %w", err)
		}
		err = r.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, r.d.rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			for _, stmt := range splitStatements(string(body)) {
				if _, err := tx.ExecContext(ctx, stmt); err != nil {
					return err
				}
			}
			_, err := tx.ExecContext(ctx, r.d.rebind(`INSERT INTO schema_migrations (version) VALUES (?)`), v)
			return err
		})
		if err != nil {
			return fmt.Errorf("migration %s: %w", e.Name(), err)
		}
	}
	return nil
}

// splitStatements splits a migration into its statements at each ";",
// except the ones inside a statement's body: between the "$$" quotes of a
// PostgreSQL function, and between BEGIN and the END that closes an SQLite
// CREATE TRIGGER. (Comments must not contain ";".)
func splitStatements(body string) []string {
	var out []string
	var cur strings.Builder
	for _, part := range strings.SplitAfter(body, ";") {
		cur.WriteString(part)
		s := cur.String()
		if strings.Count(s, "$$")%2 == 1 {
			continue
		}
		if up := strings.ToUpper(s); strings.Contains(up, "CREATE TRIGGER") && strings.Contains(up, "BEGIN") &&
			!strings.HasSuffix(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(up), ";")), "END") {
			continue
		}
		if strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(s), ";")) != "" {
			out = append(out, s)
		}
		cur.Reset()
	}
	if strings.TrimSpace(cur.String()) != "" {
		out = append(out, cur.String())
	}
	return out
}

// prepared returns the cached prepared statement for q (already rebound).
func (r *DB) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	if st, ok := r.stmts.Load(q); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := r.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if prev, loaded := r.stmts.LoadOrStore(q, st); loaded {
		st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// row runs a single-row query through the statement cache. Every such
// query is a lookup by key (or a count over an index), so on SQLite it runs
// without the caller's cancellation (pointCtx).
func (r *DB) row(ctx context.Context, q string, args ...any) rowScanner {
	st, err := r.prepared(ctx, r.d.rebind(q))
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(r.pointCtx(ctx), args...)
}

// pointCtx returns the context for a short, bounded SQLite read: ctx
// without its cancellation. A cancellable context costs two goroutines per
// query (database/sql's watcher of the result set and the driver's
// interrupter) and a progress handler installed and removed around every
// statement, which is a sizeable part of a point read served from the page
// cache; such a read takes microseconds and cannot wait for a lock (WAL
// readers do not wait for writers), so there is nothing to interrupt. PostgreSQL queries
// keep ctx: they cross the network.
func (r *DB) pointCtx(ctx context.Context) context.Context {
	if r.d.name != sqliteDialect.name {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// rows runs a query through the statement cache.
func (r *DB) rows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := r.prepared(ctx, r.d.rebind(q))
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}

type rowScanner interface{ Scan(...any) error }

type errRow struct{ err error }

func (e errRow) Scan(...any) error { return e.err }

func (r *DB) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// Ping implements registry.Registry.
func (r *DB) Ping(ctx context.Context) error { return r.db.PingContext(ctx) }

// Close implements registry.Registry. Closing again does nothing.
func (r *DB) Close() (err error) {
	r.closed.Do(func() { err = r.close() })
	return err
}

func (r *DB) close() error {
	var werr error
	if r.raw != nil {
		werr = r.raw.close()
	}
	if r.gc != nil {
		r.gc.close()
		r.wal.Stop()
		werr = errors.Join(werr, r.gc.db.Close())
	}
	r.stmts.Range(func(_, st any) bool {
		st.(*sql.Stmt).Close()
		return true
	})
	return errors.Join(r.db.Close(), werr)
}

// queryFunc runs a query written with ? placeholders.
type queryFunc func(ctx context.Context, q string, args ...any) (*sql.Rows, error)

// wrap turns driver errors into registry errors with a short context.
func (r *DB) wrap(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%s: %w", what, registry.ErrNotFound)
	case r.d.isUnique(err):
		return fmt.Errorf("%s: %w", what, registry.ErrAlreadyExists)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }
