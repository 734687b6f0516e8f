package netpoll

import (
	"net"
	"sync"
	"testing"
	"time"
)

// TestState: one reader at a time, and an event during a turn makes the
// reader go on instead of handing the connection to another.
func TestState(t *testing.T) {
	var s State
	if !s.Claim() {
		t.Fatal("idle connection not claimed")
	}
	if s.Claim() {
		t.Fatal("claimed twice")
	}
	if s.Release() {
		t.Fatal("released although an event came during the turn")
	}
	if !s.Release() {
		t.Fatal("not released after a quiet turn")
	}
	if !s.Claim() {
		t.Fatal("released connection not claimed again")
	}
}

// TestPool_Bounded: at most max goroutines run, every item is taken once,
// and idle goroutines end.
func TestPool_Bounded(t *testing.T) {
	var (
		mu      sync.Mutex
		running int
		most    int
		got     = map[int]int{}
		p       *Pool[int]
		release = make(chan struct{})
	)
	p = NewPool[int](3, 50*time.Millisecond, func() {
		mu.Lock()
		running++
		most = max(most, running)
		mu.Unlock()
		idle := StoppedTimer()
		for {
			x, ok := p.Take(idle)
			if !ok {
				mu.Lock()
				running--
				mu.Unlock()
				return
			}
			<-release
			mu.Lock()
			got[x]++
			mu.Unlock()
		}
	})
	for i := 0; i < 100; i++ {
		p.Push(i)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for p.Alive() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if most > 3 || p.Started() > 3 {
		t.Fatalf("%d goroutines at once, %d started; bound 3", most, p.Started())
	}
	if p.Alive() != 0 {
		t.Fatalf("%d goroutines still alive after idle", p.Alive())
	}
	for i := 0; i < 100; i++ {
		if got[i] != 1 {
			t.Fatalf("item %d taken %d times", i, got[i])
		}
	}
}

type tconn struct {
	State
	name string
}

// TestPoller: a registered socket is reported when bytes arrive, once per
// turn, and again after Release when more arrive; Remove forgets it.
func TestPoller(t *testing.T) {
	p, err := NewPoller[*tconn]()
	if err != nil {
		t.Skip("no epoll here:", err) // Linux only; CI is Linux
	}
	ready := make(chan *tconn, 16)
	go p.Wait(func(c *tconn) { ready <- c })
	defer p.Close()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	raw := Pollable(server)
	if raw == nil {
		t.Fatal("TCP connection not pollable")
	}
	c := &tconn{name: "a"}
	token, err := p.Add(c, raw)
	if err != nil {
		t.Fatal(err)
	}
	expect := func(what string) {
		t.Helper()
		select {
		case got := <-ready:
			if got != c {
				t.Fatalf("%s: reported %v", what, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not reported", what)
		}
	}
	quiet := func(what string) {
		t.Helper()
		select {
		case <-ready:
			t.Fatalf("%s: reported", what)
		case <-time.After(100 * time.Millisecond):
		}
	}
	quiet("no bytes yet")
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	expect("bytes arrived")
	if _, err := client.Write([]byte("more")); err != nil {
		t.Fatal(err)
	}
	quiet("bytes during a turn") // the reader holds it: told to read again
	buf := make([]byte, 64)
	n, err := ReadNow(raw, buf)
	if err != nil || string(buf[:n]) != "hellomore" {
		t.Fatalf("ReadNow = %q, %v", buf[:n], err)
	}
	if n, err := ReadNow(raw, buf); n != 0 || err != nil {
		t.Fatalf("ReadNow on an empty socket = %d, %v; want 0, nil", n, err)
	}
	if c.Release() {
		t.Fatal("Release ignored the event during the turn")
	}
	if !c.Release() {
		t.Fatal("not released")
	}
	if _, err := client.Write([]byte("again")); err != nil {
		t.Fatal(err)
	}
	expect("bytes after release")
	c.Release()
	p.Remove(token)
	if _, err := client.Write([]byte("gone")); err != nil {
		t.Fatal(err)
	}
	quiet("removed")
	client.Close()
	time.Sleep(50 * time.Millisecond)
	for {
		n, err := ReadNow(raw, buf)
		if err != nil {
			break
		}
		if n == 0 {
			t.Fatal("closed peer reads as empty, want EOF")
		}
	}
}
