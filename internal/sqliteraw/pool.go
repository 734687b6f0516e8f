package sqliteraw

import (
	"errors"
	"sync"
)

// ErrClosed is returned by ReadPool.Get once the pool is closed.
var ErrClosed = errors.New("sqlite: read pool closed")

// ReadPool is a bounded pool of read-only connections to one database file,
// each with the same statements prepared once, for hot point reads that
// database/sql makes expensive (a result set set up per query, column names
// and declared types read anew, every value boxed). Connections are opened
// on demand up to the bound; Get waits when all are in use.
//
// A reader's statements run in autocommit mode: each read is its own short
// read transaction, ended when the statement is reset, so a pooled reader
// never holds a snapshot between calls (a WAL checkpoint can always
// complete) and, in WAL mode, never waits for the writer. Put resets every
// statement of the reader, so a caller that forgot to cannot keep one open.
type ReadPool struct {
	path    string
	setup   string
	queries []string
	max     int

	mu     sync.Mutex
	cond   sync.Cond
	idle   []*Reader
	n      int // open connections, idle or in use
	closed bool
}

// Reader is one pooled connection and its prepared statements, in the
// order given to OpenReadPool. Use it from one goroutine between Get and
// Put.
type Reader struct {
	c     *Conn
	stmts []*Stmt
}

// Stmt returns the i-th statement (0-based, the order of OpenReadPool's
// queries).
func (r *Reader) Stmt(i int) *Stmt { return r.stmts[i] }

// OpenReadPool opens a pool of at most max (≥ 1) connections to the
// existing database at path. Each new connection runs setup (pragmas such
// as busy_timeout or mmap_size; it is made read-only with query_only) and
// prepares queries. The first connection is opened at once, so a bad path
// or query fails here.
func OpenReadPool(path string, max int, setup string, queries ...string) (*ReadPool, error) {
	if max < 1 {
		return nil, errors.New("sqlite: read pool needs at least one connection")
	}
	p := &ReadPool{path: path, setup: setup, queries: queries, max: max}
	p.cond.L = &p.mu
	r, err := p.open()
	if err != nil {
		return nil, err
	}
	p.n = 1
	p.idle = append(p.idle, r)
	return p, nil
}

func (p *ReadPool) open() (*Reader, error) {
	c, err := Open(p.path)
	if err != nil {
		return nil, err
	}
	if err := c.Exec("PRAGMA query_only=1;" + p.setup); err != nil {
		c.Close()
		return nil, err
	}
	r := &Reader{c: c, stmts: make([]*Stmt, len(p.queries))}
	for i, q := range p.queries {
		if r.stmts[i], err = c.Prepare(q); err != nil {
			c.Close()
			return nil, err
		}
	}
	return r, nil
}

// Get returns an idle reader, opens one if fewer than max are open, or
// waits for one to be put back. It fails with ErrClosed once the pool is
// closed.
func (p *ReadPool) Get() (*Reader, error) {
	p.mu.Lock()
	for {
		switch {
		case p.closed:
			p.mu.Unlock()
			return nil, ErrClosed
		case len(p.idle) > 0:
			r := p.idle[len(p.idle)-1]
			p.idle = p.idle[:len(p.idle)-1]
			p.mu.Unlock()
			return r, nil
		case p.n < p.max:
			p.n++
			p.mu.Unlock()
			r, err := p.open()
			if err != nil {
				p.mu.Lock()
				p.n--
				p.cond.Signal()
				p.mu.Unlock()
				return nil, err
			}
			return r, nil
		}
		p.cond.Wait()
	}
}

// Put resets the reader's statements (ending any read transaction) and
// returns it to the pool, or closes it if the pool was closed meanwhile.
func (p *ReadPool) Put(r *Reader) {
	for _, s := range r.stmts {
		s.Reset() // an error was reported by the Step that caused it
	}
	p.mu.Lock()
	if p.closed {
		p.n--
		p.mu.Unlock()
		r.c.Close()
		return
	}
	p.idle = append(p.idle, r)
	p.cond.Signal()
	p.mu.Unlock()
}

// Open returns how many connections the pool holds (idle or in use).
func (p *ReadPool) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Close closes the idle connections; those in use are closed when they
// are put back. Get fails from now on.
func (p *ReadPool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	idle := p.idle
	p.idle = nil
	p.n -= len(idle)
	p.cond.Broadcast()
	p.mu.Unlock()
	var errs []error
	for _, r := range idle {
		errs = append(errs, r.c.Close())
	}
	return errors.Join(errs...)
}
