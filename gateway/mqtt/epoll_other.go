//go:build !linux

package mqtt

import (
	"errors"
	"syscall"
)

// epoll exists on Linux only (epoll_linux.go); elsewhere every client is
// read by mochi's own loop.
type epoll struct{}

func newPoller() (*epoll, error) { return nil, errors.New("epoll is Linux only") }

func (p *epoll) add(*pconn) error                   { return errors.New("epoll is Linux only") }
func (p *epoll) remove(*pconn)                      {}
func (p *epoll) wait(func(*pconn))                  {}
func (p *epoll) close()                             {}
func (p *epoll) each(func(*pconn))                  {}
func readNow(syscall.RawConn, []byte) (int, error)  { return 0, errors.New("epoll is Linux only") }
func writeNow(syscall.RawConn, []byte) (int, error) { return 0, errors.New("epoll is Linux only") }
