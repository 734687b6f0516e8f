package netpoll

import (
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Conn is what the poller hands to ready: a registered connection.
type Conn interface {
	// Claim reports whether the caller should hand it to a reader.
	Claim() bool
}

// Poller tells which registered connections have bytes to read, so that
// no goroutine (with its stack) waits on each idle connection. A
// connection is registered edge-triggered, once: epoll reports it each
// time bytes arrive, with no system call per read to re-register it, and
// Claim keeps a connection with one reader at a time. Reads and writes
// themselves stay on Go's net.Conn (the runtime's poller), which keeps its
// deadlines and close semantics; epoll only says when a read will not
// block.
type Poller[C Conn] struct {
	fd     int
	conns  sync.Map // token (uint64) → C
	next   atomic.Uint64
	closed atomic.Bool
	done   chan struct{}
	// wake is a pipe whose read end is registered with token 0: Close
	// writes to it so that Wait returns at once.
	wake [2]int
}

// NewPoller creates the epoll set.
func NewPoller[C Conn]() (*Poller[C], error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	p := &Poller[C]{fd: fd, done: make(chan struct{})}
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

func (p *Poller[C]) release() {
	_ = syscall.Close(p.wake[0])
	_ = syscall.Close(p.wake[1])
	_ = syscall.Close(p.fd)
}

const epollEvents = uint32(syscall.EPOLLIN|syscall.EPOLLRDHUP) | uint32(1<<31) // EPOLLET (syscall.EPOLLET is a negative int)

// Add registers c, read through raw, and returns its token (for Remove);
// bytes already waiting are reported at once. It runs inside raw.Control,
// so the descriptor cannot be closed (and its number reused) meanwhile.
// Nothing touches the registration later: closing the descriptor takes it
// out of the set.
func (p *Poller[C]) Add(c C, raw syscall.RawConn) (uint64, error) {
	token := p.next.Add(1)
	p.conns.Store(token, c)
	var err error
	if cerr := raw.Control(func(fd uintptr) {
		ev := syscall.EpollEvent{Events: epollEvents, Fd: int32(uint32(token)), Pad: int32(uint32(token >> 32))}
		err = syscall.EpollCtl(p.fd, syscall.EPOLL_CTL_ADD, int(fd), &ev)
	}); cerr != nil {
		err = cerr
	}
	if err != nil {
		p.conns.Delete(token)
		return 0, fmt.Errorf("epoll add: %w", err)
	}
	return token, nil
}

// Remove forgets the connection of token; closing its descriptor takes it
// out of the epoll set.
func (p *Poller[C]) Remove(token uint64) { p.conns.Delete(token) }

// Wait hands connections with bytes to ready (those no reader has, Claim)
// until Close.
func (p *Poller[C]) Wait(ready func(C)) {
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
			if token == 0 { // the wake-up pipe: Close
				continue
			}
			if v, ok := p.conns.Load(token); ok {
				if c := v.(C); c.Claim() {
					ready(c)
				}
			}
		}
	}
}

// Close stops Wait (which must be running) and releases the epoll
// descriptor.
func (p *Poller[C]) Close() {
	if p.closed.CompareAndSwap(false, true) {
		_, _ = syscall.Write(p.wake[1], []byte{1})
		<-p.done
		p.release()
	}
}

// Each calls f for every registered connection.
func (p *Poller[C]) Each(f func(C)) {
	p.conns.Range(func(_, v any) bool { f(v.(C)); return true })
}

// ReadNow reads what the socket holds without waiting: n == 0 with a nil
// error means nothing is waiting (EAGAIN); io.EOF the peer closed.
func ReadNow(raw syscall.RawConn, buf []byte) (int, error) {
	n, again, err := ioNow(raw.Read, syscall.Read, buf)
	if err == nil && n == 0 && !again {
		return 0, io.EOF
	}
	return n, err
}

// WriteNow writes what the socket takes without waiting: n < len(b) with
// a nil error means its buffer is full (EAGAIN).
func WriteNow(raw syscall.RawConn, b []byte) (int, error) {
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

// Writable reports whether the socket's send buffer has room (poll's
// POLLOUT: free space at least half of what is queued), so that a short
// write completes without waiting: a TLS connection cannot be written in part without
// breaking it (a record cut by a deadline), so its short frames are
// written only when this holds.
func Writable(raw syscall.RawConn) bool {
	ok := false
	_ = raw.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		for {
			n, err := unix.Poll(fds, 0)
			if err == unix.EINTR {
				continue
			}
			ok = err == nil && n == 1 && fds[0].Revents&unix.POLLOUT != 0
			return
		}
	})
	return ok
}
