package mqtt

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
)

// epoll tells which registered connections have bytes to read, so that no
// goroutine (with its stack) waits on each idle connection. A connection is
// registered edge-triggered, once: epoll reports it each time bytes
// arrive, with no system call per read to re-register it, and pconn.claim
// keeps a connection with one reader at a time. Reads and writes
// themselves stay on Go's net.Conn (the runtime's poller), which keeps its
// deadlines and close semantics; epoll only says when a read will not
// block.
type epoll struct {
	fd     int
	conns  sync.Map // token (uint64) → *pconn
	next   atomic.Uint64
	closed atomic.Bool
	done   chan struct{}
	// wake is a pipe whose read end is registered with token 0: close
	// writes to it so that wait returns at once.
	wake [2]int
}

func newPoller() (*epoll, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	p := &epoll{fd: fd, done: make(chan struct{})}
	if err := syscall.Pipe2(p.wake[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		_ = syscall.Close(fd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	if err := syscall.EpollCtl(fd, syscall.EPOLL_CTL_ADD, p.wake[0], &syscall.EpollEvent{Events: syscall.EPOLLIN}); err != nil {
		p.release()
		return nil, fmt.Errorf("epoll add wake-up pipe: %w", err)
	}
	return p, nil
}

func (p *epoll) release() {
	_ = syscall.Close(p.wake[0])
	_ = syscall.Close(p.wake[1])
	_ = syscall.Close(p.fd)
}

const epollEvents = uint32(syscall.EPOLLIN|syscall.EPOLLRDHUP) | uint32(1<<31) // EPOLLET (syscall.EPOLLET is a negative int)

// add registers c; bytes already waiting are reported at once. It runs
// inside the connection's RawConn.Control, so the descriptor cannot be
// closed (and its number reused) meanwhile. Nothing touches the
// registration later: closing the descriptor takes it out of the set.
func (p *epoll) add(c *pconn) error {
	c.token = p.next.Add(1)
	p.conns.Store(c.token, c)
	var err error
	if cerr := c.raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: epollEvents, Fd: int32(uint32(c.token)), Pad: int32(uint32(c.token >> 32))}
		err = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.conns.Delete(c.token)
		return fmt.Errorf("epoll add: %w", err)
	}
	return nil
}

// remove forgets c; closing its descriptor takes it out of the epoll set.
func (p *epoll) remove(c *pconn) { p.conns.Delete(c.token) }

// wait hands connections with bytes to ready (those no reader has) until
// close.
func (p *epoll) wait(ready func(*pconn)) {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for !p.closed.Load() {
		n, err := syscall.EpollWait(p.fd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for _, ev := range events[:n] {
			token := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
			if token == 0 { // the wake-up pipe: close
				continue
			}
			if v, ok := p.conns.Load(token); ok {
				if c := v.(*pconn); c.claim() {
					ready(c)
				}
			}
		}
	}
}

// close stops wait and releases the epoll descriptor.
func (p *epoll) close() {
	if p.closed.CompareAndSwap(false, true) {
		_, _ = syscall.Write(p.wake[1], []byte{1})
		<-p.done
		p.release()
	}
}

// each calls f for every registered connection.
func (p *epoll) each(f func(*pconn)) {
	p.conns.Range(func(_, v any) bool { f(v.(*pconn)); return true })
}

// readNow reads what the socket holds without waiting: n == 0 with a nil
// error means nothing is waiting (EAGAIN); io.EOF the peer closed.
func readNow(raw syscall.RawConn, buf []byte) (int, error) {
	n, again, err := ioNow(raw.Read, syscall.Read, buf)
	if err == nil && n == 0 && !again {
		return 0, errEOF
	}
	return n, err
}

// writeNow writes what the socket takes without waiting: n < len(b) with
// a nil error means its buffer is full (EAGAIN).
func writeNow(raw syscall.RawConn, b []byte) (int, error) {
	n, _, err := ioNow(raw.Write, syscall.Write, b)
	return n, err
}

// ioNow runs op on the socket once (again after EINTR) without waiting
// for it: epoll says when to come back. again reports EAGAIN (n is 0).
func ioNow(on func(func(fd uintptr) bool) error, op func(fd int, b []byte) (int, error), b []byte) (n int, again bool, err error) {
	var oerr error
	if err := on(func(fd uintptr) bool {
		for {
			n, oerr = op(int(fd), b)
			if oerr != syscall.EINTR {
				return true
			}
		}
	}); err != nil {
		return 0, false, err
	}
	switch {
	case oerr == syscall.EAGAIN:
		return 0, true, nil
	case oerr != nil:
		return 0, false, oerr
	}
	return n, false, nil
}
