package app

import (
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
	"github.com/iotplatform/iotplatform/internal/tlsconfig"
	"github.com/iotplatform/iotplatform/services/core"
)

// TLSConfig configures TLS on the listeners. One shared certificate pair
// (--tls-cert/--tls-key) turns TLS on for every listener on its configured
// address; a listener's own pair overrides it; a listener with neither stays
// plain (the dev mode: `make run` sets none). Files are re-read when they
// change, without a restart.
type TLSConfig struct {
	CertFile string
	KeyFile  string
	// Per-listener overrides, by listener name: api, http, ws, mqtt.
	Listeners map[string]*ListenerTLS
	// ClientCAFile enables device certificates (mutual TLS): TLS listeners
	// ask clients for a certificate and the authenticator accepts those
	// issued by this CA and registered for a device in Core.
	ClientCAFile string
	// ReloadInterval is how often the files are checked for changes.
	ReloadInterval time.Duration
}

// ListenerTLS is one listener's own certificate pair.
type ListenerTLS struct{ CertFile, KeyFile string }

// tlsListeners are the listeners that can serve TLS, with their ALPN offers.
var tlsListeners = []struct {
	name   string
	protos []string
}{
	{"api", tlsconfig.ProtosHTTP},
	{"http", tlsconfig.ProtosHTTP},
	{"ws", tlsconfig.ProtosHTTP1},
	{"mqtt", tlsconfig.ProtosNone},
}

// RegisterFlags binds the TLS flags.
func (c *TLSConfig) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.CertFile, "tls-cert", "IOT_TLS_CERT", "", "PEM certificate chain served by every listener (turns TLS on); empty: plain unless a listener has its own")
	envflag.String(fs, &c.KeyFile, "tls-key", "IOT_TLS_KEY", "", "PEM private key of --tls-cert")
	c.Listeners = map[string]*ListenerTLS{}
	for _, l := range tlsListeners {
		lt := &ListenerTLS{}
		c.Listeners[l.name] = lt
		env := "IOT_" + strings.ToUpper(l.name) + "_TLS_"
		envflag.String(fs, &lt.CertFile, l.name+"-tls-cert", env+"CERT", "", "PEM certificate chain of the "+l.name+" listener (overrides --tls-cert)")
		envflag.String(fs, &lt.KeyFile, l.name+"-tls-key", env+"KEY", "", "PEM private key of --"+l.name+"-tls-cert")
	}
	envflag.String(fs, &c.ClientCAFile, "tls-client-ca", "IOT_TLS_CLIENT_CA", "", "PEM CA certificate(s) issuing device client certificates (mutual TLS); empty: devices use tokens only")
	envflag.Duration(fs, &c.ReloadInterval, "tls-reload-interval", "IOT_TLS_RELOAD_INTERVAL", 5*time.Second, "how often certificate, key and CA files are checked for changes")
}

// pair returns the certificate pair of listener name ("" when plain).
func (c *TLSConfig) pair(name string) (cert, key string) {
	if l := c.Listeners[name]; l != nil && (l.CertFile != "" || l.KeyFile != "") {
		return l.CertFile, l.KeyFile
	}
	return c.CertFile, c.KeyFile
}

// Validate checks that pairs are complete and mutual TLS has a TLS listener.
func (c *TLSConfig) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("IOT_TLS_CERT (--tls-cert) and IOT_TLS_KEY (--tls-key) must be set together"))
	}
	anyTLS := c.CertFile != ""
	for _, l := range tlsListeners {
		lt := c.Listeners[l.name]
		if lt == nil {
			continue
		}
		if (lt.CertFile == "") != (lt.KeyFile == "") {
			env := "IOT_" + strings.ToUpper(l.name) + "_TLS_"
			errs = append(errs, fmt.Errorf("%sCERT (--%s-tls-cert) and %sKEY (--%s-tls-key) must be set together", env, l.name, env, l.name))
		}
		anyTLS = anyTLS || lt.CertFile != ""
	}
	if c.ClientCAFile != "" && !anyTLS {
		errs = append(errs, errors.New("IOT_TLS_CLIENT_CA (--tls-client-ca) needs TLS: set IOT_TLS_CERT and IOT_TLS_KEY"))
	}
	if c.ReloadInterval <= 0 {
		errs = append(errs, errors.New("IOT_TLS_RELOAD_INTERVAL (--tls-reload-interval) must be positive"))
	}
	return errors.Join(errs...)
}

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
	for _, l := range tlsListeners {
		certFile, keyFile := c.pair(l.name)
		if certFile == "" {
			continue
		}
		cert := loaded[[2]string{certFile, keyFile}]
		if cert == nil {
			var err error
			if cert, err = tlsconfig.LoadCertificate(certFile, keyFile); err != nil {
				return p, fmt.Errorf("%s listener: %w", l.name, err)
			}
			loaded[[2]string{certFile, keyFile}] = cert
			rl.WatchCertificate(cert)
		}
		p.tls[l.name] = tlsconfig.Server(cert, l.protos, p.clientCAs != nil)
		a.registerCertExpiry(l.name, cert)
	}
	if len(loaded) > 0 || p.clientCAs != nil {
		a.addRunner("tls-reload", rl.Run)
	}
	return p, nil
}

// listenTLS wraps ln in TLS when listener name has a certificate.
func (a *App) listenTLS(name string, ln net.Listener) net.Listener {
	cfg := a.tls[name]
	a.log.Info("listening", "server", name, "addr", ln.Addr().String(), "tls", cfg != nil)
	if cfg != nil {
		return tls.NewListener(ln, cfg)
	}
	return ln
}

// serve serves s over TLS when it has a configuration (HTTP/2 via ALPN for
// gRPC clients, except on the WebSocket listener), else plain.
func (s *server) serve() error {
	if s.tls == nil {
		return s.srv.Serve(s.ln)
	}
	s.srv.TLSConfig = s.tls
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(len(s.tls.NextProtos) > 0 && s.tls.NextProtos[0] == "h2")
	s.srv.Protocols = p
	return s.srv.ServeTLS(s.ln, "", "")
}
