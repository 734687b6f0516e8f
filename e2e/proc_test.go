package e2e

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is one process of a multi-process topology (a role, a function),
// started from any binary and stopped with SIGTERM at cleanup.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs bytes.Buffer
	done chan error
	// stopped is set by the first stop (t.Cleanup may follow an explicit one).
	stopped bool
}

// startProc runs bin with args and env (added to the test's environment)
// and waits until readyURL answers 200.
func startProc(t *testing.T, name, bin string, args, env []string, readyURL string) *proc {
	t.Helper()
	p := &proc{t: t, name: name, done: make(chan error, 1)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	w := &syncWriter{w: &p.logs, mu: &p.mu}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(p.stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(readyURL)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			t.Fatalf("%s exited during start: %v\n%s", name, err, p.Logs())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after 60s\n%s", name, tail(p.Logs(), 40))
		}
	}
}

// Logs returns what the process printed so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func (p *proc) stop() {
	if p.stopped {
		return
	}
	p.stopped = true
	// A process the test killed has exited already: its exit waits in done
	// (reading cmd.ProcessState here instead would race with cmd.Wait).
	select {
	case err := <-p.done:
		p.done <- err
		return
	default:
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Errorf("%s exited with %v after SIGTERM\n%s", p.name, err, tail(p.Logs(), 40))
		}
	case <-time.After(30 * time.Second):
		p.cmd.Process.Kill()
		p.t.Errorf("%s did not stop within 30s of SIGTERM", p.name)
	}
	if p.t.Failed() {
		p.t.Logf("%s logs:\n%s", p.name, tail(p.Logs(), 40))
	}
}
