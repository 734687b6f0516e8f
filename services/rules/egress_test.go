package rules

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
)

var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

func TestEgressAllowed_InternalRefusedPublicAndAllowedPass(t *testing.T) {
	allow, err := ParseAllowNets(" 10.1.0.0/16 , 127.0.0.1,fd00::5")
	if err != nil {
		t.Fatal(err)
	}
	for addr, want := range map[string]bool{
		"93.184.215.14": true, "2606:4700::1111": true, "8.8.8.8": true,
		"127.0.0.2": false, "169.254.169.254": false, "10.0.0.5": false, "172.20.1.1": false, "192.168.1.1": false,
		"100.64.0.1": false, "0.0.0.0": false, "224.0.0.1": false, "::1": false, "fe80::1": false, "fd00::6": false,
		"::ffff:10.0.0.5": false, "::ffff:8.8.8.8": true, "64:ff9b::a00:5": false,
		"10.1.2.3": true, "127.0.0.1": true, "fd00::5": true, "::ffff:127.0.0.1": true,
	} {
		if got := egressAllowed(netip.MustParseAddr(addr), allow); got != want {
			t.Errorf("%s: allowed %v, want %v", addr, got, want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1/8/8"} {
		if _, err := ParseAllowNets(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseAllowNets(%q): %v, want an error naming it", bad, err)
		}
	}
	if ps, err := ParseAllowNets(""); err != nil || len(ps) != 0 {
		t.Errorf("empty: %v %v", ps, err)
	}
}

// TestNotifier_InternalWebhookRefusedOnceNotRetried: with the default policy
// a webhook to a receiver on 127.0.0.1 (here reached through a hostname, as
// a rebinding attacker would) is never connected to: one attempt is
// recorded as refused and the delivery is given up without retries.
func TestNotifier_InternalWebhookRefusedOnceNotRetried(t *testing.T) {
	f := newFixture(t)
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	s := f.sensor("temp", registry.TypeDouble)
	f.rule(s, KindThreshold, Spec{Op: OpAbove, High: 10}, "http://localhost:"+port+"/hook")
	e := f.engine(false)
	n := NewNotifier(slog.New(slog.DiscardHandler), f.reg, NotifierConfig{Backoff: 20 * time.Millisecond, Poll: 20 * time.Millisecond}, nil, nil)
	e.OnDeliveries(n.Wake)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.Run(ctx)
	f.feed(e, doubles(s, time.Now().UnixNano(), 11))
	as := f.alerts(0)
	var at []registry.DeliveryAttempt
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end) && len(at) == 0; time.Sleep(20 * time.Millisecond) {
		var err error
		if at, err = f.reg.DeliveryAttempts(context.Background(), as[0].ID); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond) // backoff is 20 ms: a retry would have happened by now
	at, _ = f.reg.DeliveryAttempts(context.Background(), as[0].ID)
	if len(at) != 1 || at[0].OK || !strings.HasPrefix(at[0].Error, "refused: ") || !strings.Contains(at[0].Error, "is internal") {
		t.Fatalf("attempts %+v, want one refused attempt", at)
	}
	if hits.Load() != 0 {
		t.Fatalf("the internal receiver got %d requests", hits.Load())
	}
}
