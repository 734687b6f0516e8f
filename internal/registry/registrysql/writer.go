package registrysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/iotplatform/iotplatform/internal/sqlitewal"
)

// wtx runs statements of one write (written with ? placeholders) inside the
// transaction that carries it.
type wtx struct {
	r   *DB
	ctx context.Context
	tx  *sql.Tx
}

func (w wtx) stmt(q string) (*sql.Stmt, error) {
	if w.r.gc == nil {
		return nil, nil
	}
	return w.r.gc.prepared(w.ctx, q)
}

func (w wtx) row(q string, args ...any) rowScanner {
	st, err := w.stmt(q)
	if err != nil {
		return errRow{err}
	}
	if st != nil {
		return w.tx.StmtContext(w.ctx, st).QueryRowContext(w.ctx, args...)
	}
	return w.tx.QueryRowContext(w.ctx, w.r.d.rebind(q), args...)
}

func (w wtx) exec(q string, args ...any) (sql.Result, error) {
	st, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return w.tx.StmtContext(w.ctx, st).ExecContext(w.ctx, args...)
	}
	return w.tx.ExecContext(w.ctx, w.r.d.rebind(q), args...)
}

func (w wtx) rows(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	st, err := w.stmt(q)
	if err != nil {
		return nil, err
	}
	if st != nil {
		return w.tx.StmtContext(w.ctx, st).QueryContext(w.ctx, args...)
	}
	return w.tx.QueryContext(w.ctx, w.r.d.rebind(q), args...)
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
	return r.gc.submit(ctx, fn)
}

// groupCommitter owns the SQLite write connection: one goroutine takes the
// writes queued meanwhile, runs them in one transaction and commits once
// (synchronous=FULL: the commit returns after the fsync), then answers each
// caller. Between groups it keeps the write-ahead log bounded (sqlitewal).
type groupCommitter struct {
	r    *DB
	db   *sql.DB // the write pool (see openWriter)
	reqs chan *writeReq
	quit chan struct{}
	done chan struct{}
	// maxGroup bounds the writes of one transaction.
	maxGroup int
	wal      *sqlitewal.Keeper

	mu    sync.Mutex
	stmts map[string]*sql.Stmt
}

type writeReq struct {
	ctx  context.Context
	fn   func(w wtx) error
	errc chan error
}

var errClosed = errors.New("registry closed")

func newGroupCommitter(r *DB, db *sql.DB, wal *sqlitewal.Keeper) *groupCommitter {
	g := &groupCommitter{
		r: r, db: db, wal: wal,
		reqs:     make(chan *writeReq, 4096),
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		maxGroup: 512,
		stmts:    map[string]*sql.Stmt{},
	}
	go g.loop()
	return g
}

// prepared returns q prepared on the write pool. The pool has a spare
// connection so preparing works while the committer's transaction holds the
// other; Tx.StmtContext then prepares it once on the transaction's
// connection and reuses it afterwards.
func (g *groupCommitter) prepared(ctx context.Context, q string) (*sql.Stmt, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if st, ok := g.stmts[q]; ok {
		return st, nil
	}
	st, err := g.db.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	g.stmts[q] = st
	return st, nil
}

func (g *groupCommitter) submit(ctx context.Context, fn func(w wtx) error) error {
	req := &writeReq{ctx: ctx, fn: fn, errc: make(chan error, 1)}
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
	g.mu.Lock()
	for _, st := range g.stmts {
		st.Close()
	}
	g.mu.Unlock()
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
	tx, err := g.db.BeginTx(ctx, nil)
	if err != nil {
		return fail(fmt.Errorf("begin: %w", err))
	}
	defer tx.Rollback()
	// Statements run under the committer's context: a caller giving up must
	// not interrupt the connection the whole group shares.
	w := wtx{r: g.r, ctx: ctx, tx: tx}
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
	if err := tx.Commit(); err != nil {
		return fail(fmt.Errorf("commit: %w", err))
	}
	return errs
}
