package tlsconfig

import (
	"errors"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the listeners' TLS settings on the command line (`iotplatform
// serve --tls-*`, --<listener>-tls-*, each with its IOT_* variable). One
// shared certificate pair (--tls-cert/--tls-key) turns TLS on for every
// listener on its configured address; a listener's own pair overrides it;
// a listener with neither stays plain (the dev mode: `make run` sets none).
// Files are re-read when they change, without a restart.
type Flags struct {
	CertFile string
	KeyFile  string
	// Per-listener overrides, by listener name: api, http, ws, mqtt.
	Listeners map[string]*ListenerFlags
	// ClientCAFile enables device certificates (mutual TLS): TLS listeners
	// ask clients for a certificate and the authenticator accepts those
	// issued by this CA and registered for a device in Core.
	ClientCAFile string
	// ReloadInterval is how often the files are checked for changes.
	ReloadInterval time.Duration
}

// ListenerFlags is one listener's own certificate pair.
type ListenerFlags struct{ CertFile, KeyFile string }

// Listeners are the listeners that can serve TLS, with their ALPN offers.
var Listeners = []struct {
	Name   string
	Protos []string
}{
	{"api", ProtosHTTP},
	{"http", ProtosHTTP},
	{"ws", ProtosHTTP1},
	{"mqtt", ProtosNone},
}

// RegisterFlags binds the TLS flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.String(fs, &c.CertFile, "tls-cert", "IOT_TLS_CERT", "", "PEM certificate chain served by every listener (turns TLS on); empty: plain unless a listener has its own")
	envflag.String(fs, &c.KeyFile, "tls-key", "IOT_TLS_KEY", "", "PEM private key of --tls-cert")
	c.Listeners = map[string]*ListenerFlags{}
	for _, l := range Listeners {
		lt := &ListenerFlags{}
		c.Listeners[l.Name] = lt
		env := "IOT_" + strings.ToUpper(l.Name) + "_TLS_"
		envflag.String(fs, &lt.CertFile, l.Name+"-tls-cert", env+"CERT", "", "PEM certificate chain of the "+l.Name+" listener (overrides --tls-cert)")
		envflag.String(fs, &lt.KeyFile, l.Name+"-tls-key", env+"KEY", "", "PEM private key of --"+l.Name+"-tls-cert")
	}
	envflag.String(fs, &c.ClientCAFile, "tls-client-ca", "IOT_TLS_CLIENT_CA", "", "PEM CA certificate(s) issuing device client certificates (mutual TLS); empty: devices use tokens only")
	envflag.Duration(fs, &c.ReloadInterval, "tls-reload-interval", "IOT_TLS_RELOAD_INTERVAL", 5*time.Second, "how often certificate, key and CA files are checked for changes")
}

// Pair returns the certificate pair of listener name ("" when plain).
func (c *Flags) Pair(name string) (cert, key string) {
	if l := c.Listeners[name]; l != nil && (l.CertFile != "" || l.KeyFile != "") {
		return l.CertFile, l.KeyFile
	}
	return c.CertFile, c.KeyFile
}

// Validate checks that pairs are complete and mutual TLS has a TLS listener.
func (c *Flags) Validate() error {
	var errs []error
	if (c.CertFile == "") != (c.KeyFile == "") {
		errs = append(errs, errors.New("IOT_TLS_CERT (--tls-cert) and IOT_TLS_KEY (--tls-key) must be set together"))
	}
	anyTLS := c.CertFile != ""
	for _, l := range Listeners {
		lt := c.Listeners[l.Name]
		if lt == nil {
			continue
		}
		if (lt.CertFile == "") != (lt.KeyFile == "") {
			env := "IOT_" + strings.ToUpper(l.Name) + "_TLS_"
			errs = append(errs, fmt.Errorf("%sCERT (--%s-tls-cert) and %sKEY (--%s-tls-key) must be set together", env, l.Name, env, l.Name))
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
