package netpoll

import (
	"net"
	"sync/atomic"
	"syscall"
)

// NonBlocking is the socket under a TLS connection read through epoll:
// its reads block as usual (the TLS handshake, the first request or
// packet, read on a goroutine) until SetNonBlocking, then never wait: with
// nothing in the socket a read fails with ErrWouldBlock, which crypto/tls
// does not keep as the connection's error, holding a partial record until
// the rest arrives. Writes always go to the connection (with their
// deadlines).
type NonBlocking struct {
	net.Conn
	raw         syscall.RawConn
	nonblocking atomic.Bool
}

// NewNonBlocking wraps c (a TCP connection, under wrappers that expose it:
// Pollable); nil when it is not one.
func NewNonBlocking(c net.Conn) *NonBlocking {
	raw := Pollable(c)
	if raw == nil {
		return nil
	}
	return &NonBlocking{Conn: c, raw: raw}
}

// SetNonBlocking makes reads return at once from now on.
func (c *NonBlocking) SetNonBlocking() { c.nonblocking.Store(true) }

// Raw returns the socket (for Poller.Add).
func (c *NonBlocking) Raw() syscall.RawConn { return c.raw }

// Read reads the connection; after SetNonBlocking, what the socket holds
// without waiting (ErrWouldBlock: nothing; io.EOF: the peer closed).
func (c *NonBlocking) Read(b []byte) (int, error) {
	if !c.nonblocking.Load() {
		return c.Conn.Read(b)
	}
	n, err := ReadNow(c.raw, b)
	if err == nil && n == 0 {
		return 0, ErrWouldBlock
	}
	return n, err
}

// NetConn returns the connection as wrapped.
func (c *NonBlocking) NetConn() net.Conn { return c.Conn }

// wouldBlock is a temporary net.Error: crypto/tls does not make it the
// connection's error (tls.Conn.readRecordOrCCS), so the next read goes on.
type wouldBlock struct{}

func (wouldBlock) Error() string   { return "netpoll: no bytes waiting" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// ErrWouldBlock is a NonBlocking read's error when nothing is waiting.
var ErrWouldBlock net.Error = wouldBlock{}

// NonBlockingUnder returns the NonBlocking connection under c's wrappers
// (NetConn, *tls.Conn's included); nil when there is none.
func NonBlockingUnder(c net.Conn) *NonBlocking {
	for {
		switch x := c.(type) {
		case *NonBlocking:
			return x
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return nil
		}
	}
}

// NonBlockingListener wraps ln's TCP connections in NonBlocking (others
// are returned as accepted): a server that wraps them in TLS (such as
// http.Server.ServeTLS) leaves the socket under crypto/tls switchable.
func NonBlockingListener(ln net.Listener) net.Listener { return nbListener{ln} }

type nbListener struct{ net.Listener }

func (l nbListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if nb := NewNonBlocking(c); nb != nil {
		return nb, nil
	}
	return c, nil
}
