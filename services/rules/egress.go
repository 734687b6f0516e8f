package rules

// This file holds the webhook egress policy: any user who may create a rule
// chooses a URL the platform will POST to, so without a policy a rule could
// reach what only the platform's own network can (a cloud metadata endpoint
// at 169.254.169.254, the admin port of a database on 10.0.0.5, the
// platform's own API on 127.0.0.1). Webhooks therefore connect only to
// public addresses unless an operator allows internal networks by prefix.
// The check runs on the address actually dialled, after name resolution, so
// a hostname that resolves (or later re-resolves) to an internal address is
// refused too.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"
)

// errAddressRefused marks a webhook connection refused by the egress policy.
// Such a delivery is given up at once: retrying cannot change the answer.
var errAddressRefused = errors.New("address not allowed for webhooks")

// internalNets are the ranges a webhook may not reach unless allowed:
// loopback, private (RFC 1918, RFC 4193), link-local (incl. cloud metadata),
// carrier-grade NAT, unspecified, multicast, and IPv6 prefixes that embed
// such addresses or are reserved.
var internalNets = func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
		"192.0.0.0/24", "192.168.0.0/16", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4",
		"::/128", "::1/128", "64:ff9b::/96", "64:ff9b:1::/48", "fc00::/7", "fe80::/10", "ff00::/8",
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
}()

// ParseAllowNets parses a comma-separated list of CIDR prefixes or single
// addresses ("10.1.0.0/16,127.0.0.1") that webhooks may reach although they
// are internal. An empty string allows none.
func ParseAllowNets(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", f)
		}
		ps = append(ps, netip.PrefixFrom(a, a.BitLen()))
	}
	return ps, nil
}

// egressAllowed reports whether a webhook may connect to a.
func egressAllowed(a netip.Addr, allow []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range allow {
		if p.Contains(a) {
			return true
		}
	}
	for _, p := range internalNets {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

// webhookClient is the notifier's default HTTP client: one attempt's time
// limit, no redirects (a redirect could point anywhere), no proxy from the
// environment, and a dialer that refuses addresses outside the policy.
func webhookClient(timeout time.Duration, allow []netip.Prefix) *http.Client {
	d := &net.Dialer{
		Timeout: timeout,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("%w: %s", errAddressRefused, address)
			}
			if !egressAllowed(ap.Addr(), allow) {
				return fmt.Errorf("%w: %s is internal (allow it with --webhook-allow-nets)", errAddressRefused, ap.Addr().Unmap())
			}
			return nil
		},
	}
	return &http.Client{
		Timeout:       timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport: &http.Transport{
			DialContext:         d.DialContext,
			ForceAttemptHTTP2:   true,
			MaxIdleConns:        64,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: timeout,
		},
	}
}
