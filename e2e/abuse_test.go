package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// The abuse suite reproduces the holes of issue #8 against the built binary
// (docs/SECURITY.md describes the defences).

// procKB reads a field (VmHWM, VmRSS) of /proc/<pid>/status in KiB.
func (p *Platform) procKB(field string) int {
	p.t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		p.t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	p.t.Fatalf("no %s in /proc status", field)
	return 0
}

// signIn posts a sign-in from client address xff (the platform trusts
// X-Forwarded-For from 127.0.0.1 in these tests).
func signIn(client *http.Client, p *Platform, user, pw, xff string) (int, http.Header, error) {
	req, _ := http.NewRequest("POST", p.URL()+"/api/users/signin", strings.NewReader(fmt.Sprintf(`{"username":%q,"password":%q}`, user, pw)))
	req.Header.Set("Content-Type", "application/json")
	if xff != "" {
		req.Header.Set("X-Forwarded-For", xff)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header, nil
}

// TestAbuse_ConcurrentWrongSignInsKeepMemoryBoundedAndRealSignInWorks: 200
// concurrent wrong sign-ins used to take the process to 3.94 GB and a real
// sign-in to 16.6 s. Now the argon2id work is bounded by a worker pool and
// the flooding address is throttled; root, from another address, gets in.
func TestAbuse_ConcurrentWrongSignInsKeepMemoryBoundedAndRealSignInWorks(t *testing.T) {
	p := Start(t, Options{Args: []string{"--trusted-proxies", "127.0.0.1"}})
	before := p.procKB("VmRSS")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 0, MaxIdleConnsPerHost: 200}, Timeout: 30 * time.Second}
	var counts sync.Map
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Eight attacking addresses, 25 connections each.
			xff := fmt.Sprintf("203.0.113.%d", i%8+1)
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				code, h, err := signIn(client, p, fmt.Sprintf("victim%d", j%50), "wrong-password", xff)
				if err != nil {
					continue
				}
				if (code == 429 || code == 503) && h.Get("Retry-After") == "" {
					t.Errorf("%d without Retry-After", code)
				}
				v, _ := counts.LoadOrStore(code, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		}()
	}
	time.Sleep(2 * time.Second) // the flood is on
	code, _, err := signIn(client, p, "root", p.AdminPassword, "198.51.100.1")
	for tries := 0; err == nil && code == 503 && tries < 20; tries++ { // busy: retry after Retry-After, like a client would
		time.Sleep(time.Second)
		code, _, err = signIn(client, p, "root", p.AdminPassword, "198.51.100.1")
	}
	if err != nil || code != 200 {
		t.Errorf("root's sign-in during the flood: %d %v", code, err)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	hwm := p.procKB("VmHWM")
	got := map[int]int64{}
	counts.Range(func(k, v any) bool { got[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("RSS before %d MiB, peak %d MiB; answers %v", before/1024, hwm/1024, got)
	if got[401] == 0 {
		t.Errorf("no wrong sign-in was answered 401: %v", got)
	}
	if got[200] != 0 {
		t.Errorf("wrong passwords signed in: %v", got)
	}
	// 200 unbounded argon2id checks need 200 × 19 MiB ≈ 3.8 GiB; the pool
	// (GOMAXPROCS workers) keeps the peak in the hundreds of MiB at most.
	if hwm > 400*1024 {
		t.Errorf("peak RSS %d MiB under 200 concurrent wrong sign-ins, want < 400 MiB", hwm/1024)
	}
	m := p.Do("GET", "/metrics", "", nil)
	if !strings.Contains(string(m.Body), `iot_signin_failures_total{reason="bad_credentials"}`) {
		t.Error("failed sign-ins are not counted in iot_signin_failures_total")
	}
	if strings.Contains(p.Logs(), "wrong-password") {
		t.Error("a password was written to the log")
	}
	if !strings.Contains(p.Logs(), "sign-in failed") {
		t.Error("failed sign-ins are not logged")
	}
}

// TestAbuse_SignInBackoffEndsAndTheRightPasswordWorksAgain: failures on one
// account back off exponentially (429 + Retry-After, without spending a
// KDF check); once the window is over the right password works — no
// permanent lockout an attacker could use against root.
func TestAbuse_SignInBackoffEndsAndTheRightPasswordWorksAgain(t *testing.T) {
	p := Start(t, Options{Args: []string{"--signin-account-free", "3", "--signin-backoff-base", "300ms", "--signin-backoff-max", "1s"}})
	var statuses []int
	var retry string
	for i := 0; i < 8; i++ {
		code, h, err := signIn(http.DefaultClient, p, "root", "wrong-password", "")
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, code)
		if code == 429 {
			retry = h.Get("Retry-After")
		}
	}
	if statuses[0] != 401 || statuses[1] != 401 || statuses[2] != 401 || statuses[7] != 429 {
		t.Fatalf("statuses %v: want 401 for the free failures, then 429", statuses)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 || n > 1 {
		t.Fatalf("Retry-After %q, want 1 (seconds, the capped window)", retry)
	}
	// Within the window even the right password is refused (no KDF spent)...
	if code, _, _ := signIn(http.DefaultClient, p, "root", p.AdminPassword, ""); code != 429 {
		t.Fatalf("right password inside the window: %d, want 429", code)
	}
	// ...and after it, it works.
	time.Sleep(1100 * time.Millisecond)
	if code, _, _ := signIn(http.DefaultClient, p, "root", p.AdminPassword, ""); code != 200 {
		t.Fatalf("right password after the window: %d, want 200", code)
	}
	if !strings.Contains(p.Logs(), "sign-in throttled") {
		t.Error("throttled sign-ins are not logged")
	}
}

// rawPost writes a POST with the given Content-Length (-1: chunked) and
// streams up to total body bytes at once; it returns the status line and
// how many body bytes the server took before answering.
func rawPost(t *testing.T, addr, path, token string, contentLength int64, total int64) (string, int64) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	hdr := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n", path)
	if token != "" {
		hdr += "Authorization: Bearer " + token + "\r\n"
	}
	if contentLength >= 0 {
		hdr += fmt.Sprintf("Content-Length: %d\r\n\r\n", contentLength)
	} else {
		hdr += "Transfer-Encoding: chunked\r\n\r\n"
	}
	if _, err := io.WriteString(c, hdr); err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	go func() {
		// One JSON string that never ends: {"username":"aaaa...
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = 'a'
		}
		first := append([]byte(`{"username":"`), chunk[13:]...)
		rest := chunk
		chunk = first
		for sent.Load() < total {
			var err error
			if contentLength >= 0 {
				_, err = c.Write(chunk)
			} else {
				_, err = fmt.Fprintf(c, "%x\r\n%s\r\n", len(chunk), chunk)
			}
			if err != nil {
				return
			}
			sent.Add(int64(len(chunk)))
			chunk = rest
		}
	}()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatalf("no answer to a %d-byte body: %v", total, err)
	}
	return strings.TrimSpace(line), sent.Load()
}

// TestAbuse_HugeBodiesAreRefusedEarly: a 300 MB JSON body to
// /api/users/signin (no credentials) used to be read and parsed (RSS 1.75
// GB). Now it is refused with 413 from its Content-Length, or after the
// limit when it is chunked, on the API and on the HTTP gateway.
func TestAbuse_HugeBodiesAreRefusedEarly(t *testing.T) {
	p := Start(t, Options{})
	d := p.NewDevice(p.AdminToken(), "big", "double")
	const huge = 300 << 20
	for _, tc := range []struct {
		name, addr, path, token string
		contentLength           int64
	}{
		{"api declared", p.API, "/api/users/signin", "", huge},
		{"api chunked", p.API, "/api/users/signin", "", -1},
		{"connect declared", p.API, "/iot.core.v1.CoreService/SignIn", "", huge},
		{"http gateway declared", p.HTTP, "/", d.Token, huge},
		{"http gateway chunked", p.HTTP, "/", d.Token, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, sent := rawPost(t, tc.addr, tc.path, tc.token, tc.contentLength, huge)
			if !strings.Contains(status, " 413 ") {
				t.Fatalf("answer %q, want 413", status)
			}
			// The answer came long before the body could have been read:
			// at most the limit (8 MiB API, 1 MiB gateway) plus what the
			// socket buffers hold.
			if sent > 64<<20 {
				t.Fatalf("the client had sent %d MiB when answered: the body was read", sent>>20)
			}
		})
	}
	if hwm := p.procKB("VmHWM"); hwm > 300*1024 {
		t.Fatalf("peak RSS %d MiB after 300 MB bodies, want < 300 MiB", hwm/1024)
	}
}

// TestAbuse_SlowBodiesAreCutOff: a body trickled one byte at a time after
// the headers used to hold the connection for 200 s and more. Now a body
// slower than --body-min-rate is cut off after --body-grace (408), on the
// API and on the HTTP gateway; streaming RPCs are exempt. (The short
// --shutdown-timeout: an h2c connection that carried a stream holds
// http.Server.Shutdown until the timeout, on main before this work too.)
func TestAbuse_SlowBodiesAreCutOff(t *testing.T) {
	p := Start(t, Options{Args: []string{"--body-grace", "1s", "--body-min-rate", "100", "--shutdown-timeout", "2s"}})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "slowpoke", "double")
	for _, tc := range []struct{ name, addr, path, hdr string }{
		{"api", p.API, "/api/users/signin", ""},
		{"http gateway", p.HTTP, "/", "Authorization: Bearer " + d.Token + "\r\n"},
		{"http gateway unauthenticated", p.HTTP, "/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: 100\r\n\r\n{", tc.path, tc.hdr)
			go func() {
				for i := 0; i < 99; i++ { // one byte every 500 ms: 2 B/s
					time.Sleep(500 * time.Millisecond)
					if _, err := c.Write([]byte(" ")); err != nil {
						return
					}
				}
			}()
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			r := bufio.NewReader(c)
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("slow body not cut off: %v", err)
			}
			want := " 408 "
			if tc.hdr == "" && tc.addr == p.HTTP {
				want = " 401 " // answered before reading the body, which is then not waited for
			}
			if !strings.Contains(line, want) {
				t.Fatalf("answer %q, want%s", line, want)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatalf("connection not closed after the 408: %v", err)
			}
		})
	}
	t.Run("streams are exempt", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		stream, err := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(d.Token)).Ingest.IngestStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for seq := uint64(1); seq <= 2; seq++ {
			time.Sleep(1500 * time.Millisecond) // slower than --body-grace with nothing sent
			if err := stream.Send(ingestBatch(t, d, seq)); err != nil {
				t.Fatal(err)
			}
			if ack, err := stream.Receive(); err != nil || ack.GetAccepted() != 1 {
				t.Fatalf("ack %d of a slow stream: %v %v", seq, ack, err)
			}
		}
	})
}

// TestAbuse_IdleMQTTSocketsAreClosedAndTheAPIStillAnswers: 19,980 idle
// sockets used to exhaust the descriptors (accept4: too many open files).
// Here the process runs with RLIMIT_NOFILE 1024: 2,000 sockets that never
// send CONNECT take at most the edges' share, the API keeps answering, and
// every socket is closed after --mqtt-connect-timeout.
func TestAbuse_IdleMQTTSocketsAreClosedAndTheAPIStillAnswers(t *testing.T) {
	p := Start(t, Options{Prefix: []string{"prlimit", "--nofile=1024:1024"}, Args: []string{"--mqtt-connect-timeout", "2s"}})
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	start := time.Now()
	for i := 0; i < 2000; i++ {
		c, err := net.DialTimeout("tcp", p.MQTT, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	// The API answers while they are open, sign-in included.
	if r := p.Do("GET", "/healthz", "", nil); r.Status != 200 {
		t.Fatalf("healthz with 2,000 idle MQTT sockets: %d", r.Status)
	}
	admin := p.AdminToken()
	d := p.NewDevice(admin, "alongside", "double")
	// Every socket is closed by the server: the ones over the edges' budget
	// at once, the others at the CONNECT deadline.
	var open atomic.Int64
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Read(make([]byte, 1)); err != io.EOF && !isReset(err) {
				open.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := open.Load(); n > 0 {
		t.Fatalf("%d of 2,000 idle MQTT sockets still open %v after they were opened", n, time.Since(start).Round(time.Second))
	}
	// A real device connects afterwards.
	if code := mqttPublishV5(t, p, d, `{"sensor_id":`+d.SensorID+`,"value":1}`); code != 0 {
		t.Fatalf("MQTT publish after the idle sockets: reason 0x%x", code)
	}
	if !strings.Contains(p.Logs(), `rlimit_nofile=1024`) {
		t.Errorf("the descriptor budget was not computed from RLIMIT_NOFILE 1024")
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// TestAbuse_StreamsPerCallerAreCapped: one token used to open 5,000
// Subscribe streams. Now --max-streams-per-caller bounds Subscribe and
// IngestStream (resource_exhausted) and WebSocket connections (429), and a
// closed stream gives its place back.
func TestAbuse_StreamsPerCallerAreCapped(t *testing.T) {
	p := Start(t, Options{Args: []string{"--max-streams-per-caller", "3", "--shutdown-timeout", "2s"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := p.AdminToken()
	d := p.NewDevice(admin, "capped", "double")
	sensor := mustID(t, d.SensorID)

	t.Run("subscribe", func(t *testing.T) {
		q := iot.New(p.URL(), iot.WithToken(admin)).Query
		var subs []*connect.ServerStreamForClient[queryv1.SubscribeResponse]
		for i := 0; i < 4; i++ {
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			s, err := q.Subscribe(sctx, &queryv1.SubscribeRequest{SensorId: []int64{sensor}})
			if err == nil && !s.Receive() {
				err = s.Err()
			}
			if i < 3 && err != nil {
				t.Fatalf("subscription %d: %v", i+1, err)
			}
			if i == 3 {
				if connect.CodeOf(err) != connect.CodeResourceExhausted {
					t.Fatalf("4th subscription: %v, want resource_exhausted", err)
				}
				break
			}
			subs = append(subs, s)
			_ = scancel
		}
		subs[0].Close()
		var err error
		for tries := 0; tries < 50; tries++ { // the server notices the close
			var s *connect.ServerStreamForClient[queryv1.SubscribeResponse]
			if s, err = q.Subscribe(ctx, &queryv1.SubscribeRequest{SensorId: []int64{sensor}}); err == nil && s.Receive() {
				s.Close()
				return
			} else if err == nil {
				err = s.Err()
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("a closed subscription's place was not given back: %v", err)
	})

	t.Run("websocket and ingest stream share the device's cap", func(t *testing.T) {
		ing := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(d.Token)).Ingest
		s1, err := ing.IngestStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer s1.CloseRequest()
		if err := s1.Send(ingestBatch(t, d, 1)); err != nil {
			t.Fatal(err)
		}
		if _, err := s1.Receive(); err != nil {
			t.Fatal(err)
		}
		hdr := http.Header{"Authorization": {"Bearer " + d.Token}}
		for i := 0; i < 2; i++ {
			c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: hdr})
			if err != nil {
				t.Fatalf("websocket %d: %v", i+1, err)
			}
			defer c.CloseNow()
		}
		_, resp, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: hdr})
		if err == nil || resp == nil || resp.StatusCode != 429 {
			t.Fatalf("4th stream of the device (websocket): %v %v, want 429", resp, err)
		}
		s2, err := ing.IngestStream(ctx)
		if err == nil {
			_ = s2.Send(ingestBatch(t, d, 1))
			_, err = s2.Receive()
		}
		if connect.CodeOf(err) != connect.CodeResourceExhausted {
			t.Fatalf("4th stream of the device (IngestStream): %v, want resource_exhausted", err)
		}
	})
}

// ingestBatch is one IngestStream batch of one reading for d.
func ingestBatch(t *testing.T, d Device, seq uint64) *ingestv1.IngestStreamRequest {
	return &ingestv1.IngestStreamRequest{Sequence: seq, Readings: []*ingestv1.Reading{{SensorId: mustID(t, d.SensorID),
		Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(seq)}}}}
}

// mqttV5 connects d with an MQTT 5 client (paho.golang).
func mqttV5(t *testing.T, p *Platform, d Device) *paho.Client {
	t.Helper()
	conn, err := net.Dial("tcp", p.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ca, err := c.Connect(context.Background(), &paho.Connect{ClientID: "abuse-" + d.ID + "-" + randHex(4), KeepAlive: 30, CleanStart: true,
		Username: "JWT", UsernameFlag: true, Password: []byte(d.Token), PasswordFlag: true})
	if err != nil || ca.ReasonCode != 0 {
		t.Fatalf("mqtt 5 connect: %v %v", ca, err)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c
}

// mqttPublishV5 publishes payload at QoS 1 as d and returns the PUBACK
// reason code.
func mqttPublishV5(t *testing.T, p *Platform, d Device, payload string) byte {
	t.Helper()
	c := mqttV5(t, p, d)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := c.Publish(ctx, &paho.Publish{Topic: d.ID, QoS: 1, Payload: []byte(payload)})
	if r != nil {
		return r.ReasonCode
	}
	t.Fatalf("mqtt 5 publish: %v", err)
	return 0
}

// TestAbuse_RateLimitIsAnsweredOnEveryEdge: a device over its ingest limit
// is told so on every edge, never silently dropped, and the limit is one
// bucket per device shared by all edges. Device A has its own limit set
// through REST (1 reading/s, burst 2); device B gets the global default
// from IOT_INGEST_RATE / IOT_INGEST_BURST.
func TestAbuse_RateLimitIsAnsweredOnEveryEdge(t *testing.T) {
	p := Start(t, Options{Env: []string{"IOT_INGEST_RATE=0.2", "IOT_INGEST_BURST=1"}, Args: []string{"--ingest-sensor-cache-ttl", "100ms"}})
	admin := p.AdminToken()
	a, b := p.NewDevice(admin, "limited", "double"), p.NewDevice(admin, "defaulted", "double")
	upd := p.Do("PATCH", "/api/devices/"+a.ID, admin, `{"ingest_limit":{"readings_per_second":0.2,"burst":2}}`)
	if upd.Status != 200 || !strings.Contains(string(upd.Body), `"readings_per_second":0.2`) {
		t.Fatalf("set the device's ingest limit: %d %s", upd.Status, upd.Body)
	}
	if r := p.Do("PATCH", "/api/devices/"+a.ID, admin, `{"ingest_limit":{"readings_per_second":-1}}`); r.Status != 400 {
		t.Fatalf("negative limit: %d %s, want 400", r.Status, r.Body)
	}
	time.Sleep(300 * time.Millisecond) // past the limit's cache TTL
	reading := func(d Device) string { return `{"sensor_id":"` + d.SensorID + `","value":1}` }
	post := func(d Device, body string) (int, http.Header, string) {
		req, _ := http.NewRequest("POST", "http://"+p.HTTP+"/", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(rb)
	}

	// HTTP: the burst of 2 passes, the next batch is refused with 429.
	if code, _, body := post(a, "["+reading(a)+","+reading(a)+"]"); code != 200 {
		t.Fatalf("within the burst: %d %s", code, body)
	}
	code, h, body := post(a, reading(a))
	if code != 429 || h.Get("Retry-After") == "" || !strings.Contains(body, `"rate_limited"`) {
		t.Fatalf("over the limit on HTTP: %d %v %s, want 429 rate_limited with Retry-After", code, h, body)
	}
	// The same bucket on the other edges (nothing refills at 0.2/s here).
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := iot.New(p.URL(), iot.WithToken(a.Token)).Ingest.Ingest(ctx, &ingestv1.IngestRequest{Readings: ingestBatch(t, a, 1).Readings})
	if connect.CodeOf(err) != connect.CodeResourceExhausted {
		t.Fatalf("over the limit on Connect: %v, want resource_exhausted", err)
	}
	if rc := mqttPublishV5(t, p, a, reading(a)); rc != 0x96 {
		t.Fatalf("over the limit on MQTT 5: PUBACK reason 0x%x, want 0x96", rc)
	}
	ws, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + a.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	if err := ws.Write(ctx, websocket.MessageText, []byte(reading(a))); err != nil {
		t.Fatal(err)
	}
	_, ack, err := ws.Read(ctx)
	if err != nil || !strings.Contains(string(ack), `"status":429`) || !strings.Contains(string(ack), `"code":"rate_limited"`) {
		t.Fatalf("over the limit on WebSocket: %s %v, want a 429 rate_limited ack", ack, err)
	}
	// MQTT 3.1.1 has no PUBACK reason codes: the device is disconnected.
	lost := make(chan struct{})
	o := pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("rl-" + a.ID).SetUsername("JWT").SetPassword(a.Token).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectionLostHandler(func(pahov3.Client, error) { close(lost) })
	mc := pahov3.NewClient(o)
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt 3.1.1 connect: %v", tk.Error())
	}
	mc.Publish(a.ID, 1, false, reading(a))
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("MQTT 3.1.1 publish over the limit: still connected")
	}

	// Device B: the global default (burst 1).
	if code, _, body := post(b, reading(b)); code != 200 {
		t.Fatalf("default limit, first reading: %d %s", code, body)
	}
	if code, _, _ := post(b, reading(b)); code != 429 {
		t.Fatalf("default limit, second reading: %d, want 429", code)
	}
	// Nothing refused was stored: A has exactly its 2, B its 1.
	for d, want := range map[*Device]int{&a: 2, &b: 1} {
		if got := len(readingsREST(t, p, admin, d.SensorID, "")); got != want {
			t.Errorf("device %s: %d readings stored, want %d", d.ID, got, want)
		}
	}
	m := p.Do("GET", "/metrics", "", nil)
	for _, proto := range []string{"http", "grpc", "mqtt", "ws"} {
		if !strings.Contains(string(m.Body), `iot_ingest_rate_limited_total{protocol="`+proto+`"}`) {
			t.Errorf("no iot_ingest_rate_limited_total for %s", proto)
		}
	}
}
