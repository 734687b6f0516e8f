package registrysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/iotplatform/iotplatform/internal/sqlitewal"
)

// wtx runs statements of one write (written with ? placeholders) inside the
// transaction that carries it: on SQLite the group commit's, through
// statements prepared once on the committer's connection (g); on PostgreSQL
// the write's own transaction (tx), or none for a single-statement write
// (writeOne: the statement commits by itself).
type wtx struct {
	r   *DB
	ctx context.Context
	tx  *sql.Tx
	g   *groupCommitter
}

// stmt returns q prepared where the write runs; nil for a transaction's
// plain statement.
func (w wtx) stmt(q string) (*sql.Stmt, error) {
	switch {
	case w.g != nil:
		return w.g.prepared(q)
	case w.tx == nil:
		return w.r.prepared(w.ctx, w.r.d.rebind(q))
	}
	return nil, nil
}

func (w wtx) row(q string, args ...any) rowScanner {
	st, err := w.stmt(q)
	switch {
	case err != nil:
		return errRow{err}
	case st != nil:
		return st.QueryRowContext(w.ctx, args...)
	}
	return w.tx.QueryRowContext(w.ctx, w.r.d.rebind(q), args...)
}

func (w wtx) exec(q string, args ...any) (sql.Result, error) {
	st, err := w.stmt(q)
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.ExecContext(w.ctx, args...)
	}
	return w.tx.ExecContext(w.ctx, w.r.d.rebind(q), args...)
}

func (w wtx) rows(_ context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(q)
	switch {
	case err != nil:
		return nil, err
	case st != nil:
		return st.QueryContext(w.ctx, args...)
	}
	return w.tx.QueryContext(w.ctx, w.r.d.rebind(q), args...)
}

// insert runs an INSERT of one row (q without RETURNING) and returns the new
// row's id: on SQLite the statement's last insert rowid (no RETURNING, so no
// result set to open, describe and close), on PostgreSQL through
// "RETURNING id". ok is false when the insert was skipped (ON CONFLICT DO
// NOTHING).
func (w wtx) insert(q string, args ...any) (id int64, ok bool, err error) {
	if w.g == nil {
		err = w.row(q+` RETURNING id`, args...).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, false, nil
		}
		return id, err == nil, err
	}
	res, err := w.exec(q, args...)
	if err != nil {
		return 0, false, err
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return 0, false, err
	}
	id, err = res.LastInsertId()
	return id, err == nil, err
}

// write runs fn in a write transaction and returns once it is durable. On
// SQLite, concurrent writes join one group: one transaction and one fsync
// for the whole group (each write in its own savepoint, so a failing write
// undoes only itself). On PostgreSQL each write is its own transaction (the
// server already flushes concurrent commits together).
func (r *DB) write(ctx context.Context, fn func(w wtx) error) error {
	if r.gc == nil {
		return r.tx(ctx, func(tx *sql.Tx) error { return fn(wtx{r: r, ctx: ctx, tx: tx}) })
	}
	return r.gc.submit(ctx, fn, false)
}

// writeOne is write for an fn that runs exactly one statement and can fail
// only in it. On PostgreSQL the statement runs on its own, committing by
// itself: one round trip instead of BEGIN, statement, COMMIT. In an SQLite
// group it needs no savepoint: SQLite undoes a statement that fails on a
// constraint by itself and keeps the transaction; any other failure fails
// the whole group (nothing of it is committed).
func (r *DB) writeOne(ctx context.Context, fn func(w wtx) error) error {
	if r.gc == nil {
		return fn(wtx{r: r, ctx: ctx})
	}
	return r.gc.submit(ctx, fn, true)
}

// isConstraint reports whether err is SQLite's SQLITE_CONSTRAINT (any
// extended code), after which the transaction is still open.
func isConstraint(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

// groupCommitter owns the SQLite write connection: one goroutine takes the
// writes queued meanwhile, runs them in one transaction and commits once
// (synchronous=FULL: the commit returns after the fsync), then answers each
// caller. Between groups it keeps the write-ahead log bounded (sqlitewal).
//
// The transactions run on one connection held for good (conn), with BEGIN
// IMMEDIATE and COMMIT as statements and every statement prepared once on
// that connection: a database/sql transaction would re-bind each prepared
// statement to itself on every use (Tx.Stmt), a cost paid per statement of
// every write.
type groupCommitter struct {
	r    *DB
	db   *sql.DB   // the write pool: conn, and a spare for checkpoints
	conn *sql.Conn // the committer's connection
	reqs chan *writeReq
	quit chan struct{}
	done chan struct{}
	// maxGroup bounds the writes of one transaction.
	maxGroup int
	wal      *sqlitewal.Keeper

	// stmts are the statements prepared on conn, by query text; used by
	// the committer goroutine only (and by close once it ended).
	stmts map[string]*sql.Stmt
}

type writeReq struct {
	ctx context.Context
	fn  func(w wtx) error
	// one: fn runs one statement (writeOne).
	one  bool
	errc chan error
}

var errClosed = errors.New("registry closed")

func newGroupCommitter(ctx context.Context, r *DB, db *sql.DB, wal *sqlitewal.Keeper) (*groupCommitter, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("open sqlite writer: %w", err)
	}
	g := &groupCommitter{
		r: r, db: db, conn: conn, wal: wal,
		reqs:     make(chan *writeReq, 4096),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		maxGroup: 512,
		stmts:    map[string]*sql.Stmt{},
	}
	go g.loop()
	return g, nil
}

// prepared returns q prepared on the committer's connection (committer
// goroutine only).
func (g *groupCommitter) prepared(q string) (*sql.Stmt, error) {
	if st, ok := g.stmts[q]; ok {
		return st, nil
	}
	st, err := g.conn.PrepareContext(context.Background(), q)
	if err != nil {
		return nil, err
	}
	g.stmts[q] = st
	return st, nil
}

// run executes one of the transaction control statements.
func (g *groupCommitter) run(q string) error {
	st, err := g.prepared(q)
	if err == nil {
		_, err = st.ExecContext(context.Background())
	}
	return err
}

func (g *groupCommitter) submit(ctx context.Context, fn func(w wtx) error, one bool) error {
	req := &writeReq{ctx: ctx, fn: fn, one: one, errc: make(chan error, 1)}
	select {
	case g.reqs <- req:
	case <-g.quit:
		return errClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	// Wait for the outcome even if ctx ends meanwhile: the write may
	// commit, and the caller must not be told it did not.
	select {
	case err := <-req.errc:
		return err
	case <-g.done:
		select {
		case err := <-req.errc:
			return err
		default:
			return errClosed
		}
	}
}

func (g *groupCommitter) close() {
	close(g.quit)
	<-g.done
	for _, st := range g.stmts {
		st.Close()
	}
	g.conn.Close()
}

func (g *groupCommitter) loop() {
	defer close(g.done)
	for {
		var first *writeReq
		select {
		case first = <-g.reqs:
		case <-g.quit:
			g.drain()
			return
		case <-g.wal.Tick():
			g.wal.Idle()
			continue
		}
		group := []*writeReq{first}
	gather:
		for len(group) < g.maxGroup {
			select {
			case r := <-g.reqs:
				group = append(group, r)
			default:
				break gather
			}
		}
		errs := g.commit(group)
		for i, r := range group {
			r.errc <- errs[i]
		}
		g.wal.AfterCommit()
	}
}

func (g *groupCommitter) drain() {
	for {
		select {
		case r := <-g.reqs:
			r.errc <- errClosed
		default:
			return
		}
	}
}

// commit runs the group in one transaction and returns each write's error.
func (g *groupCommitter) commit(group []*writeReq) []error {
	ctx := context.Background()
	errs := make([]error, len(group))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if err := g.run(`BEGIN IMMEDIATE`); err != nil {
		return fail(fmt.Errorf("begin: %w", err))
	}
	committed := false
	defer func() {
		if !committed {
			// Also after a failed COMMIT, which may leave the
			// transaction open; "no transaction is active" is fine.
			_ = g.run(`ROLLBACK`)
		}
	}()
	// Statements run under the committer's context: a caller giving up must
	// not interrupt the connection the whole group shares.
	w := wtx{r: g.r, ctx: ctx, g: g}
	single := len(group) == 1
	for i, req := range group {
		if err := req.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		if single {
			if errs[i] = req.fn(w); errs[i] != nil {
				return errs
			}
			continue
		}
		if req.one {
			if errs[i] = req.fn(w); errs[i] != nil && !isConstraint(errs[i]) {
				return fail(errs[i])
			}
			continue
		}
		if _, err := w.exec(`SAVEPOINT w`); err != nil {
			return fail(fmt.Errorf("savepoint: %w", err))
		}
		if errs[i] = req.fn(w); errs[i] != nil {
			if _, err := w.exec(`ROLLBACK TO w`); err != nil {
				return fail(fmt.Errorf("rollback to savepoint: %w", err))
			}
		}
		if _, err := w.exec(`RELEASE w`); err != nil {
			return fail(fmt.Errorf("release savepoint: %w", err))
		}
	}
	if err := g.run(`COMMIT`); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	committed = true
	return errs
}
