// Package tlsconfig builds the server TLS configuration every listener uses
// (API, HTTP and WebSocket ingest, MQTT) from PEM files, and keeps those
// files loaded: a Reloader polls their modification time and size and swaps
// in the new certificate or CA pool, so rotation needs no restart and open
// connections keep the certificate they were established with.
package tlsconfig

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// stamp identifies one version of a file.
type stamp struct {
	mod  time.Time
	size int64
}

func stat(name string) (stamp, error) {
	fi, err := os.Stat(name)
	if err != nil {
		return stamp{}, err
	}
	return stamp{fi.ModTime(), fi.Size()}, nil
}

// Certificate is a server certificate chain and key kept loaded from two PEM
// files.
type Certificate struct {
	certFile, keyFile string

	mu     sync.RWMutex
	cur    *tls.Certificate
	stamps [2]stamp
}

// LoadCertificate loads the PEM certificate chain certFile and its private
// key keyFile.
func LoadCertificate(certFile, keyFile string) (*Certificate, error) {
	c := &Certificate{certFile: certFile, keyFile: keyFile}
	if _, err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// Get returns the current certificate.
func (c *Certificate) Get() *tls.Certificate {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.cur
}

// reload loads the files again when either changed; a pair that does not
// load (e.g. the certificate is replaced but the key not yet) keeps the
// current certificate and is retried on the next call.
func (c *Certificate) reload() (bool, error) {
	cs, err := stat(c.certFile)
	if err != nil {
		return false, fmt.Errorf("tls certificate: %w", err)
	}
	ks, err := stat(c.keyFile)
	if err != nil {
		return false, fmt.Errorf("tls key: %w", err)
	}
	c.mu.RLock()
	same := c.cur != nil && c.stamps == [2]stamp{cs, ks}
	c.mu.RUnlock()
	if same {
		return false, nil
	}
	kp, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return false, fmt.Errorf("tls key pair %s, %s: %w", c.certFile, c.keyFile, err)
	}
	c.mu.Lock()
	c.cur, c.stamps = &kp, [2]stamp{cs, ks}
	c.mu.Unlock()
	return true, nil
}

func (c *Certificate) name() string { return c.certFile }

// Pool is a set of CA certificates kept loaded from one PEM file (the
// client CA for device certificates).
type Pool struct {
	file string

	mu    sync.RWMutex
	cur   *x509.CertPool
	stamp stamp
}

// LoadPool loads the PEM CA certificates in file.
func LoadPool(file string) (*Pool, error) {
	p := &Pool{file: file}
	if _, err := p.reload(); err != nil {
		return nil, err
	}
	return p, nil
}

// Get returns the current pool.
func (p *Pool) Get() *x509.CertPool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.cur
}

func (p *Pool) reload() (bool, error) {
	s, err := stat(p.file)
	if err != nil {
		return false, fmt.Errorf("tls client CA: %w", err)
	}
	p.mu.RLock()
	same := p.cur != nil && p.stamp == s
	p.mu.RUnlock()
	if same {
		return false, nil
	}
	b, err := os.ReadFile(p.file)
	if err != nil {
		return false, fmt.Errorf("tls client CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return false, fmt.Errorf("tls client CA %s: no PEM certificate found", p.file)
	}
	p.mu.Lock()
	p.cur, p.stamp = pool, s
	p.mu.Unlock()
	return true, nil
}

func (p *Pool) name() string { return p.file }

type reloadable interface {
	reload() (bool, error)
	name() string
}

// Reloader polls the files of its certificates and pools.
type Reloader struct {
	log      *slog.Logger
	interval time.Duration

	mu    sync.Mutex
	items []reloadable
}

// NewReloader returns a Reloader polling every interval (default 5 s).
func NewReloader(log *slog.Logger, interval time.Duration) *Reloader {
	if interval <= 0 {
		interval = 5 * time.Second
	}
	return &Reloader{log: log, interval: interval}
}

// WatchCertificate adds c to the polled files.
func (r *Reloader) WatchCertificate(c *Certificate) { r.watch(c) }

// WatchPool adds p to the polled files.
func (r *Reloader) WatchPool(p *Pool) { r.watch(p) }

func (r *Reloader) watch(it reloadable) {
	r.mu.Lock()
	r.items = append(r.items, it)
	r.mu.Unlock()
}

// ReloadNow checks every file once and returns the errors of those that
// changed but could not be loaded.
func (r *Reloader) ReloadNow() error {
	r.mu.Lock()
	items := append([]reloadable(nil), r.items...)
	r.mu.Unlock()
	var errs []error
	for _, it := range items {
		changed, err := it.reload()
		switch {
		case err != nil:
			r.log.Warn("tls reload failed, keeping the previous files", "file", it.name(), "err", err)
			errs = append(errs, err)
		case changed:
			r.log.Info("tls files reloaded", "file", it.name())
		}
	}
	return errors.Join(errs...)
}

// Run polls until ctx ends.
func (r *Reloader) Run(ctx context.Context) error {
	t := time.NewTicker(r.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			_ = r.ReloadNow()
		}
	}
}

// ALPN protocol lists for Server.
var (
	// ProtosHTTP offers HTTP/2 (gRPC clients) and HTTP/1.1 (REST, Connect).
	ProtosHTTP = []string{"h2", "http/1.1"}
	// ProtosHTTP1 offers HTTP/1.1 only (WebSocket upgrades).
	ProtosHTTP1 = []string{"http/1.1"}
	// ProtosNone negotiates no application protocol (MQTT: a client
	// offering any ALPN id is still accepted).
	ProtosNone []string
)

// Server returns a server configuration presenting c's current certificate
// on every handshake, negotiating protos. With requestClientCert the client
// is asked for a certificate but not required to send one and the server
// does not verify it: device certificates are verified by the platform's
// authenticator (internal/authn), which answers with each protocol's own
// "unauthenticated" instead of a failed handshake, and callers with a token
// keep working on the same port.
func Server(c *Certificate, protos []string, requestClientCert bool) *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: protos,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.Get(), nil
		},
	}
	if requestClientCert {
		cfg.ClientAuth = tls.RequestClientCert
	}
	return cfg
}
