package limits

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func echoLen() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "read: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, "%d %s", len(b), ClientAddr(r.Context()))
	})
}

func TestGuard_RefusesDeclaredTooLargeBodyBeforeReading(t *testing.T) {
	read := false
	h := Guard(GuardConfig{MaxBody: 100}, nil, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { read = true }))
	r := httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 101)))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 413 || read || !strings.Contains(w.Body.String(), `"too_large"`) {
		t.Fatalf("got %d %q, handler ran: %v", w.Code, w.Body, read)
	}
}

func TestGuard_RefusesUndeclaredTooLargeBodyWhileReading(t *testing.T) {
	h := Guard(GuardConfig{MaxBody: 100}, nil, echoLen())
	r := httptest.NewRequest("POST", "/", io.MultiReader(strings.NewReader(strings.Repeat("x", 1000))))
	r.ContentLength = -1
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 413 || strings.Contains(w.Body.String(), "read:") {
		t.Fatalf("got %d %q, want the handler's 400 replaced by 413", w.Code, w.Body)
	}
	r = httptest.NewRequest("POST", "/", strings.NewReader(strings.Repeat("x", 100)))
	r.ContentLength = -1
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != 200 || !strings.HasPrefix(w.Body.String(), "100 ") {
		t.Fatalf("a body of exactly the limit: got %d %q", w.Code, w.Body)
	}
}

func TestGuard_CutsOffSlowBodyButNotStreams(t *testing.T) {
	cfg := GuardConfig{MaxBody: 1 << 20, MinRate: 100, Grace: 300 * time.Millisecond,
		Streaming: func(r *http.Request) bool { return r.URL.Path == "/stream" }}
	srv := httptest.NewServer(Guard(cfg, nil, echoLen()))
	defer srv.Close()
	for _, tc := range []struct {
		path   string
		status string
	}{{"/", "408"}, {"/stream", "200"}} {
		t.Run(tc.path, func(t *testing.T) {
			c, err := net.Dial("tcp", srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\n", tc.path)
			start := time.Now()
			go func() { // one byte every 200 ms: 5 B/s, far below 100 B/s
				for i := 0; i < 6; i++ {
					time.Sleep(200 * time.Millisecond)
					if _, err := c.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			if !strings.Contains(line, tc.status) {
				t.Fatalf("got %q after %v, want %s", line, time.Since(start), tc.status)
			}
		})
	}
}

func TestGuard_ClientAddrTrustsForwardedForOnlyFromProxies(t *testing.T) {
	proxies, err := ParseProxies("10.0.0.0/8, 192.168.1.1")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ remote, xff, want string }{
		{"203.0.113.9:1234", "1.2.3.4", "203.0.113.9"},             // not a proxy: XFF ignored
		{"10.1.2.3:1234", "1.2.3.4", "1.2.3.4"},                    // trusted proxy
		{"10.1.2.3:1234", "6.6.6.6, 1.2.3.4, 10.9.9.9", "1.2.3.4"}, // spoofed left part ignored
		{"10.1.2.3:1234", "", "10.1.2.3"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := proxies.ClientAddr(r); got != tc.want {
			t.Errorf("%s with XFF %q: got %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
	if got := (Proxies{}).ClientAddr(&http.Request{RemoteAddr: "10.1.2.3:1", Header: http.Header{"X-Forwarded-For": {"1.2.3.4"}}}); got != "10.1.2.3" {
		t.Errorf("no trusted proxies: got %s", got)
	}
	if _, err := ParseProxies("not-an-ip"); err == nil {
		t.Error("a bad proxy address was accepted")
	}
}

func TestListen_ClosesConnectionsOverTheCapsAndReleases(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pool := NewPool(3)
	ln := Listen(inner, ListenerConfig{Name: "t", MaxConns: 2, Pool: pool}, nil)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedByServer := func(c net.Conn) bool {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		_, err := c.Read(make([]byte, 1))
		return err == io.EOF
	}
	dial()
	dial()
	a1, a2 := <-accepted, <-accepted
	if c := dial(); !closedByServer(c) {
		t.Fatal("a third connection was kept over a cap of 2")
	}
	a1.Close()
	dial()
	<-accepted
	a2.Close()
	// The pool (3) is shared: another listener's connection counts too.
	other := Listen(inner, ListenerConfig{Name: "o", Pool: pool}, nil)
	_ = other
	if second, third, fourth := pool.acquire(), pool.acquire(), pool.acquire(); !second || !third || fourth {
		t.Fatalf("pool accounting: one connection open, want two more to fit and a third refused")
	}
}

func TestListen_FirstReadDeadlineClosesSilentClients(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := Listen(inner, ListenerConfig{Name: "t", FirstReadDeadline: 200 * time.Millisecond}, nil)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		_, err = c.Read(make([]byte, 1))
		if err != nil {
			c.Close()
		}
	}()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("silent client not closed by the deadline: %v", err)
	}
}

func TestStreams_CapsPerCaller(t *testing.T) {
	s := NewStreams(2, nil)
	r1, ok1 := s.Acquire("device/1", "rpc")
	_, ok2 := s.Acquire("device/1", "ws")
	_, ok3 := s.Acquire("device/1", "mqtt")
	_, okOther := s.Acquire("device/2", "rpc")
	if !ok1 || !ok2 || ok3 || !okOther {
		t.Fatalf("got %v %v %v %v, want the third stream of device/1 refused", ok1, ok2, ok3, okOther)
	}
	r1()
	r1() // idempotent
	if _, ok := s.Acquire("device/1", "rpc"); !ok {
		t.Fatal("a released stream was not given back")
	}
	if _, ok := s.Acquire("device/1", "rpc"); ok {
		t.Fatal("double release gave back two streams")
	}
}

func TestBackoff_GrowsExponentiallyIsCappedAndResets(t *testing.T) {
	b := NewBackoff(BackoffConfig{Free: 2, Base: time.Second, Max: 4 * time.Second})
	now := time.Unix(1000, 0)
	var got []time.Duration
	for i := 0; i < 6; i++ {
		got = append(got, b.Fail("root", now))
	}
	want := []time.Duration{0, 0, time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("windows %v, want %v", got, want)
	}
	if w := b.Wait("root", now.Add(time.Second)); w != 3*time.Second {
		t.Fatalf("wait %v, want 3s", w)
	}
	if w := b.Wait("root", now.Add(4*time.Second)); w != 0 {
		t.Fatalf("after the window (never a permanent lockout): wait %v", w)
	}
	b.Succeed("root")
	if d := b.Fail("root", now); d != 0 {
		t.Fatalf("success did not reset: %v", d)
	}
	small := NewBackoff(BackoffConfig{Free: 0, Base: time.Second, Max: time.Second, MaxKeys: 8})
	for i := 0; i < 100; i++ {
		small.Fail(fmt.Sprint(i), now)
	}
	if len(small.m) > 8 {
		t.Fatalf("%d keys kept, want at most 8", len(small.m))
	}
}
