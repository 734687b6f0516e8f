//go:build !linux

package netpoll

import (
	"errors"
	"syscall"
)

// Conn is what the poller hands to ready: a registered connection.
type Conn interface{ Claim() bool }

// Poller exists on Linux only (epoll_linux.go); elsewhere the edges read
// every connection on a goroutine of its own.
type Poller[C Conn] struct{}

var errLinuxOnly = errors.New("epoll is Linux only")

// NewPoller fails: epoll is Linux only.
func NewPoller[C Conn]() (*Poller[C], error) { return nil, errLinuxOnly }

func (p *Poller[C]) Add(C, syscall.RawConn) (uint64, error) { return 0, errLinuxOnly }
func (p *Poller[C]) Remove(uint64)                          {}
func (p *Poller[C]) Wait(func(C))                           {}
func (p *Poller[C]) Close()                                 {}
func (p *Poller[C]) Each(func(C))                           {}

// ReadNow fails: epoll is Linux only.
func ReadNow(syscall.RawConn, []byte) (int, error) { return 0, errLinuxOnly }

// WriteNow fails: epoll is Linux only.
func WriteNow(syscall.RawConn, []byte) (int, error) { return 0, errLinuxOnly }

// Writable is false: epoll is Linux only.
func Writable(syscall.RawConn) bool { return false }
