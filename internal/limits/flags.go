package limits

import (
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/iotplatform/iotplatform/internal/envflag"
)

// Flags are the listener defences' command-line settings (`iotplatform
// serve`, each with its IOT_* variable; docs/SECURITY.md lists them with
// their defaults): body sizes and rates, header and idle timeouts,
// connection caps and the descriptor budget, stream caps, trusted proxies.
type Flags struct {
	// APIMaxBody bounds request bodies and Connect/gRPC messages on the API.
	APIMaxBody int
	// BodyMinRate (bytes/s) and BodyGrace cut off request bodies that
	// trickle in (slowloris after the headers); streaming RPCs are exempt.
	BodyMinRate int
	BodyGrace   time.Duration
	// ReadHeaderTimeout and IdleTimeout apply to every HTTP listener.
	ReadHeaderTimeout time.Duration
	IdleTimeout       time.Duration
	// Connection caps per listener (0: automatic, from the descriptor budget).
	APIMaxConns, HTTPMaxConns, WSMaxConns, MQTTMaxConns int
	// FDReserve descriptors are kept for the API and internal use; the
	// device edges share the rest of RLIMIT_NOFILE (0: a quarter, ≥ 256).
	FDReserve int
	// MQTTConnectTimeout closes MQTT connections that have not sent CONNECT.
	MQTTConnectTimeout time.Duration
	// MaxStreamsPerCaller caps concurrent Subscribe/IngestStream/WebSocket/
	// MQTT streams per token subject.
	MaxStreamsPerCaller int
	// TrustedProxies (IPs/CIDRs) may set X-Forwarded-For; empty trusts none.
	TrustedProxies string
}

// RegisterFlags binds the limit flags.
func (c *Flags) RegisterFlags(fs *flag.FlagSet) {
	envflag.Int(fs, &c.APIMaxBody, "api-max-body", "IOT_API_MAX_BODY", 8<<20, "largest request body and Connect/gRPC message on the API in bytes (413 / resource_exhausted above)")
	envflag.Int(fs, &c.BodyMinRate, "body-min-rate", "IOT_BODY_MIN_RATE", 1024, "slowest accepted request body in bytes/s after --body-grace, on every HTTP listener (streaming RPCs exempt); 0 disables")
	envflag.Duration(fs, &c.BodyGrace, "body-grace", "IOT_BODY_GRACE", 10*time.Second, "time a request body may take before --body-min-rate applies")
	envflag.Duration(fs, &c.ReadHeaderTimeout, "read-header-timeout", "IOT_READ_HEADER_TIMEOUT", 10*time.Second, "time to read a request's headers on every HTTP listener")
	envflag.Duration(fs, &c.IdleTimeout, "idle-timeout", "IOT_IDLE_TIMEOUT", 120*time.Second, "keep-alive HTTP connections idle this long are closed")
	envflag.Int(fs, &c.APIMaxConns, "api-max-conns", "IOT_API_MAX_CONNS", 0, "most open API connections; 0: the descriptors reserved by --fd-reserve")
	envflag.Int(fs, &c.HTTPMaxConns, "http-max-conns", "IOT_HTTP_MAX_CONNS", 0, "most open HTTP ingest connections; 0: bounded by the edges' shared descriptor budget only")
	envflag.Int(fs, &c.WSMaxConns, "ws-max-conns", "IOT_WS_MAX_CONNS", 0, "most open WebSocket connections; 0: bounded by the edges' shared descriptor budget only")
	envflag.Int(fs, &c.MQTTMaxConns, "mqtt-max-conns", "IOT_MQTT_MAX_CONNS", 0, "most open MQTT connections; 0: bounded by the edges' shared descriptor budget only")
	envflag.Int(fs, &c.FDReserve, "fd-reserve", "IOT_FD_RESERVE", 0, "file descriptors kept for the API and internal use; the device edges share the rest of RLIMIT_NOFILE (0: a quarter, at least 256)")
	envflag.Duration(fs, &c.MQTTConnectTimeout, "mqtt-connect-timeout", "IOT_MQTT_CONNECT_TIMEOUT", 10*time.Second, "MQTT connections that have not sent CONNECT within this time are closed")
	envflag.Int(fs, &c.MaxStreamsPerCaller, "max-streams-per-caller", "IOT_MAX_STREAMS_PER_CALLER", 100, "concurrent Subscribe, IngestStream, WebSocket and MQTT streams one token subject may hold; 0: unlimited")
	envflag.String(fs, &c.TrustedProxies, "trusted-proxies", "IOT_TRUSTED_PROXIES", "", "comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For is believed for per-address throttling; empty: none")
}

// Validate checks the limit flags.
func (c *Flags) Validate() error {
	var errs []error
	for name, v := range map[string]int{"api-max-body": c.APIMaxBody, "body-min-rate": c.BodyMinRate, "api-max-conns": c.APIMaxConns,
		"http-max-conns": c.HTTPMaxConns, "ws-max-conns": c.WSMaxConns, "mqtt-max-conns": c.MQTTMaxConns, "fd-reserve": c.FDReserve,
		"max-streams-per-caller": c.MaxStreamsPerCaller} {
		if v < 0 {
			errs = append(errs, envflag.Errorf(name, "must not be negative"))
		}
	}
	if c.APIMaxBody == 0 {
		errs = append(errs, envflag.Errorf("api-max-body", "must be positive"))
	}
	for name, d := range map[string]time.Duration{"body-grace": c.BodyGrace, "read-header-timeout": c.ReadHeaderTimeout,
		"idle-timeout": c.IdleTimeout, "mqtt-connect-timeout": c.MQTTConnectTimeout} {
		if d <= 0 {
			errs = append(errs, envflag.Errorf(name, "must be positive"))
		}
	}
	if _, err := ParseProxies(c.TrustedProxies); err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", envflag.Name("trusted-proxies"), err))
	}
	return errors.Join(errs...)
}
