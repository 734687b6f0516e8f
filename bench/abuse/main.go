// Command abuse measures the platform under the abuse of issue #8, against
// built binaries it starts itself on loopback:
//
//   - signin: peak RSS (VmHWM) and the latency of a legitimate sign-in while
//     200 connections send wrong sign-ins as fast as they are answered, for
//     each binary given (e.g. before and after the defences, same run);
//
//   - mqttidle: API p50/p99 (GetDevice over REST, closed loop) with no idle
//     MQTT sockets, then with n idle sockets that never send CONNECT.
//
//     go run ./bench/abuse -bin before=/tmp/old/iotplatform -bin after=bin/iotplatform
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

type bins []string

func (b *bins) String() string     { return strings.Join(*b, ",") }
func (b *bins) Set(v string) error { *b = append(*b, v); return nil }

var (
	binaries  bins
	flood     = flag.Int("attackers", 200, "concurrent wrong sign-in connections")
	floodDur  = flag.Duration("flood", 10*time.Second, "duration of the sign-in flood")
	idle      = flag.Int("idle", 10000, "idle MQTT sockets for the mqttidle scenario (0: skip)")
	vus       = flag.Int("vus", 16, "closed-loop API clients in mqttidle")
	apiDur    = flag.Duration("d", 5*time.Second, "duration of each API measurement in mqttidle")
	afterArgs = flag.String("after-args", "--trusted-proxies 127.0.0.1 --mqtt-connect-timeout 10m", "extra serve flags for binaries named after=")
)

func main() {
	flag.Var(&binaries, "bin", "name=path of a binary to measure (repeatable); the last one also runs mqttidle")
	flag.Parse()
	if len(binaries) == 0 {
		binaries = bins{"after=bin/iotplatform"}
	}
	host, _ := os.Hostname()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("machine: %s, load %s", host, load)
	fmt.Println("| binary | RSS idle MiB | peak RSS (VmHWM) MiB | legit sign-in, no load: median | legit sign-in under flood: median / max | legit OK | wrong sign-ins answered (by status) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var last *server
	for i, b := range binaries {
		name, path, _ := strings.Cut(b, "=")
		var extra []string
		if name == "after" {
			extra = strings.Fields(*afterArgs)
		}
		s := start(path, 18480+i*10, extra)
		signinScenario(name, s)
		if i == len(binaries)-1 && *idle > 0 {
			last = s
		} else {
			s.stop()
		}
	}
	if last != nil {
		mqttIdleScenario(last)
		last.stop()
	}
}

type server struct {
	cmd           *exec.Cmd
	dir           string
	api, mqtt, pw string
	client        *http.Client
	token, devID  string
}

func start(bin string, port int, extra []string) *server {
	dir, err := os.MkdirTemp("", "bench-abuse-")
	must(err)
	s := &server{dir: dir, api: fmt.Sprintf("127.0.0.1:%d", port), mqtt: fmt.Sprintf("127.0.0.1:%d", port+3), pw: "bench-pw-12345",
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1000}, Timeout: 120 * time.Second}}
	args := append([]string{"serve", "--data-dir", dir, "--api-addr", s.api, "--http-addr", fmt.Sprintf("127.0.0.1:%d", port+1),
		"--ws-addr", fmt.Sprintf("127.0.0.1:%d", port+2), "--mqtt-addr", s.mqtt, "--log-level", "error"}, extra...)
	s.cmd = exec.Command(bin, args...)
	s.cmd.Env = append(os.Environ(), "IOT_ADMIN_PASSWORD="+s.pw)
	log, _ := os.Create(filepath.Join(dir, "log"))
	s.cmd.Stdout, s.cmd.Stderr = log, log
	must(s.cmd.Start())
	for i := 0; ; i++ {
		if r, err := http.Get("http://" + s.api + "/readyz"); err == nil && r.StatusCode == 200 {
			r.Body.Close()
			break
		}
		if i > 300 {
			panic("server not ready")
		}
		time.Sleep(100 * time.Millisecond)
	}
	code, body, _ := s.signIn("root", s.pw, "")
	if code != 200 {
		panic(fmt.Sprintf("sign in: %d %s", code, body))
	}
	var tok struct{ Token string }
	_ = json.Unmarshal(body, &tok)
	s.token = tok.Token
	var dev struct{ Result struct{ ID string } }
	_ = json.Unmarshal(s.call("POST", "/api/devices/", `{"name":"bench"}`), &dev)
	s.devID = dev.Result.ID
	return s
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	os.RemoveAll(s.dir)
}

func (s *server) call(method, path, body string) []byte {
	req, _ := http.NewRequest(method, "http://"+s.api+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	must(err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func (s *server) signIn(user, pw, xff string) (int, []byte, error) {
	req, _ := http.NewRequest("POST", "http://"+s.api+"/api/users/signin", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)))
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, nil
}

func (s *server) kb(field string) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// legit signs in as root from its own address, retrying on 429/503 as a
// client honouring Retry-After would; it returns the time to a token.
func (s *server) legit() (time.Duration, bool) {
	start := time.Now()
	for time.Since(start) < 60*time.Second {
		code, _, err := s.signIn("root", s.pw, "198.51.100.7")
		if err == nil && code == 200 {
			return time.Since(start), true
		}
		if err == nil && code != 429 && code != 503 {
			return time.Since(start), false
		}
		time.Sleep(time.Second)
	}
	return time.Since(start), false
}

func signinScenario(name string, s *server) {
	rss := s.kb("VmRSS")
	var base []time.Duration
	for i := 0; i < 5; i++ {
		d, _ := s.legit()
		base = append(base, d)
	}
	var stop atomic.Bool
	var mu sync.Mutex
	answers := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < *flood; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; !stop.Load(); j++ {
				// One attacking address (as measured in issue #8).
				code, _, err := s.signIn(fmt.Sprintf("victim%d", j%50), "wrong-password", "203.0.113.9")
				if err != nil {
					code = -1
				}
				mu.Lock()
				answers[code]++
				mu.Unlock()
			}
		}()
	}
	time.Sleep(*floodDur / 3)
	var under []time.Duration
	ok := 0
	for len(under) < 3 {
		d, good := s.legit()
		under = append(under, d)
		if good {
			ok++
		}
	}
	time.Sleep(*floodDur / 3)
	stop.Store(true)
	wg.Wait()
	hwm := s.kb("VmHWM")
	fmt.Printf("| %s | %d | %d | %v | %v / %v | %d/%d | %v |\n", name, rss/1024, hwm/1024, median(base), median(under),
		maxOf(under), ok, len(under), answers)
}

func mqttIdleScenario(s *server) {
	measure := func() (float64, time.Duration, time.Duration) {
		var mu sync.Mutex
		var lat []time.Duration
		var wg sync.WaitGroup
		end := time.Now().Add(*apiDur)
		for i := 0; i < *vus; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Now().Before(end) {
					t := time.Now()
					b := s.call("GET", "/api/devices/"+s.devID, "")
					if !bytes.Contains(b, []byte(s.devID)) {
						panic("GetDevice: " + string(b))
					}
					mine = append(mine, time.Since(t))
				}
				mu.Lock()
				lat = append(lat, mine...)
				mu.Unlock()
			}()
		}
		wg.Wait()
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return float64(len(lat)) / apiDur.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100]
	}
	r0, p50a, p99a := measure()
	var conns []net.Conn
	for i := 0; i < *idle; i++ {
		c, err := net.DialTimeout("tcp", s.mqtt, 5*time.Second)
		if err != nil {
			fmt.Printf("dial %d: %v\n", i, err)
			break
		}
		conns = append(conns, c)
	}
	time.Sleep(time.Second)
	open := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); err != nil && os.IsTimeout(err) {
			open++
		}
	}
	r1, p50b, p99b := measure()
	for _, c := range conns {
		c.Close()
	}
	fmt.Printf("\nAPI GetDevice (REST, %d closed-loop clients, %v each):\n\n", *vus, *apiDur)
	fmt.Println("| idle MQTT sockets | still open at measurement | req/s | p50 | p99 | p99 vs none |")
	fmt.Println("|---|---|---|---|---|---|")
	fmt.Printf("| 0 | — | %.0f | %v | %v | 1 |\n", r0, p50a.Round(10*time.Microsecond), p99a.Round(10*time.Microsecond))
	fmt.Printf("| %d | %d | %.0f | %v | %v | %.2f |\n", len(conns), open, r1, p50b.Round(10*time.Microsecond), p99b.Round(10*time.Microsecond), float64(p99b)/float64(p99a))
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2].Round(time.Millisecond)
}

func maxOf(d []time.Duration) time.Duration {
	var m time.Duration
	for _, x := range d {
		m = max(m, x)
	}
	return m.Round(time.Millisecond)
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
