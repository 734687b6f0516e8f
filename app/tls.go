package app

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/iotplatform/iotplatform/internal/tlsconfig"
	"github.com/iotplatform/iotplatform/services/core"
)

// TLSConfig configures TLS on the listeners: its flags are declared in
// internal/tlsconfig (Flags).
type TLSConfig = tlsconfig.Flags

// tlsParts is what the tls module provides: each TLS listener's
// configuration by name, and the device CA pool (nil: no device
// certificates).
type tlsParts struct {
	tls       map[string]*tls.Config
	clientCAs *tlsconfig.Pool
}

// initTLS loads every listener's certificate (refusing to start on a bad
// file) and the client CA, and polls the files for changes.
func (a *App) initTLS() (tlsParts, error) {
	c := &a.cfg.TLS
	p := tlsParts{tls: map[string]*tls.Config{}}
	rl := tlsconfig.NewReloader(a.log.With("component", "tls"), c.ReloadInterval)
	loaded := map[[2]string]*tlsconfig.Certificate{}
	if c.ClientCAFile != "" {
		pool, err := tlsconfig.LoadPool(c.ClientCAFile)
		if err != nil {
			return p, fmt.Errorf("IOT_TLS_CLIENT_CA: %w", err)
		}
		rl.WatchPool(pool)
		p.clientCAs = pool
		a.verifier.EnableCertificates(pool.Get, core.Certificates{Reg: a.reg})
	}
	for _, l := range tlsconfig.Listeners {
		certFile, keyFile := c.Pair(l.Name)
		if certFile == "" {
			continue
		}
		cert := loaded[[2]string{certFile, keyFile}]
		if cert == nil {
			var err error
			if cert, err = tlsconfig.LoadCertificate(certFile, keyFile); err != nil {
				return p, fmt.Errorf("%s listener: %w", l.Name, err)
			}
			loaded[[2]string{certFile, keyFile}] = cert
			rl.WatchCertificate(cert)
		}
		p.tls[l.Name] = tlsconfig.Server(cert, l.Protos, p.clientCAs != nil)
		a.registerCertExpiry(l.Name, cert)
	}
	if len(loaded) > 0 || p.clientCAs != nil {
		a.addRunner("tls-reload", rl.Run)
	}
	return p, nil
}

// serve serves s over TLS when it has a configuration (HTTP/2 via ALPN for
// gRPC clients, except on the WebSocket listener; under crypto/tls the
// connections its tlsListener accepts), else plain.
func (s *server) serve() error {
	if s.tls == nil {
		return s.srv.Serve(s.ln)
	}
	ln := s.ln
	if s.tlsListener != nil {
		ln = s.tlsListener(ln)
	}
	s.srv.TLSConfig = s.tls
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(len(s.tls.NextProtos) > 0 && s.tls.NextProtos[0] == "h2")
	s.srv.Protocols = p
	return s.srv.ServeTLS(ln, "", "")
}
