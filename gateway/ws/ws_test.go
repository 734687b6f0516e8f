package ws_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"google.golang.org/protobuf/proto"

	gwws "github.com/iotplatform/iotplatform/gateway/ws"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// modes are the ways the gateway reads connections: epoll (the default
// on Linux, plain HTTP/1.1, or TLS accepted through Listener) and
// coder/websocket's goroutine per connection (--ws-epoll=false, TLS not
// accepted through Listener, other platforms).
var modes = []struct {
	name string
	cfg  gwws.Config
	tls  tlsMode
}{
	{"epoll", gwws.Config{}, plain},
	{"coder/websocket", gwws.Config{GoroutinePerConnection: true}, plain},
	{"epoll over TLS", gwws.Config{}, tlsListener},
	{"coder/websocket over TLS", gwws.Config{}, tlsOnly},
}

// tlsMode is how a test server serves the gateway.
type tlsMode int

const (
	plain       tlsMode = iota
	tlsListener         // TLS, connections accepted through Gateway.Listener
	tlsOnly             // TLS without it
)

// serve serves a gateway built with cfg and returns its ws:// (or wss://)
// URL; dial finds a TLS server's client by the URL's host.
func serve(t *testing.T, e *ingesttest.Env, cfg gwws.Config, mode tlsMode) string {
	g := gwws.New(e.Log, e.Verifier, e.Service, cfg)
	srv := httptest.NewUnstartedServer(g)
	if mode == tlsListener {
		srv.Listener = g.Listener(srv.Listener)
	}
	if mode == plain {
		srv.Start()
	} else {
		srv.StartTLS()
		clients.Store(strings.TrimPrefix(srv.URL, "https://"), srv.Client())
	}
	t.Cleanup(func() {
		srv.Close()
		_ = g.Close()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http")
}

// clients holds each TLS test server's HTTP client, by host.
var clients sync.Map

// dial is websocket.Dial with the TLS test server's client for a wss:// URL.
func dial(ctx context.Context, u string, opts *websocket.DialOptions) (*websocket.Conn, *http.Response, error) {
	if opts == nil {
		opts = &websocket.DialOptions{}
	}
	if pu, err := url.Parse(u); err == nil && pu.Scheme == "wss" {
		if c, ok := clients.Load(pu.Host); ok {
			opts.HTTPClient = c.(*http.Client)
		}
	}
	return websocket.Dial(ctx, u, opts)
}

func start(t *testing.T, cfg gwws.Config, mode tlsMode) (*ingesttest.Env, string) {
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 200 * time.Millisecond})
	return e, serve(t, e, cfg, mode)
}

func roundTrip(t *testing.T, c *websocket.Conn, typ websocket.MessageType, msg []byte) gwws.Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, typ, msg); err != nil {
		t.Fatal(err)
	}
	_, b, err := c.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var a gwws.Ack
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestWS_AuthOnUpgrade(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e, url := start(t, m.cfg, m.tls)
			tok := e.DeviceToken(t, ingesttest.DeviceA)
			cases := []struct {
				name   string
				url    string
				header http.Header
				protos []string
				want   int // 0: upgraded
			}{
				{"header", url, http.Header{"authorization": {"Bearer " + tok}}, nil, 0},
				{"query token (browser)", url + "?access_token=" + tok, nil, nil, 0},
				{"bearer subprotocol (browser)", url, nil, []string{"bearer", tok}, 0},
				{"missing", url, nil, nil, 401},
				{"malformed", url, http.Header{"Authorization": {"Basic xyz"}}, nil, 401},
				{"invalid", url, http.Header{"Authorization": {"Bearer a.b.c"}}, nil, 403},
				{"user token", url, http.Header{"Authorization": {"Bearer " + e.Token(t, "user", 1)}}, nil, 403},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					conn, resp, err := dial(context.Background(), c.url, &websocket.DialOptions{HTTPHeader: c.header, Subprotocols: c.protos})
					if c.want != 0 {
						if err == nil || resp == nil || resp.StatusCode != c.want {
							t.Fatalf("dial err=%v resp=%v, want %d", err, resp, c.want)
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					defer conn.CloseNow()
					if a := roundTrip(t, conn, websocket.MessageText, []byte(`{"sensor_id":"11","value":"4.5"}`)); a.Status != 200 || a.Accepted != 1 {
						t.Fatalf("ack %+v", a)
					}
				})
			}
		})
	}
}

func TestWS_Frames(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e, url := start(t, m.cfg, m.tls)
			conn, _, err := dial(context.Background(), url, &websocket.DialOptions{
				HTTPHeader: http.Header{"authorization": {"Bearer " + e.DeviceToken(t, ingesttest.DeviceA)}}})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseNow()
			pb, _ := proto.Marshal(&ingestv1.ReadingBatch{Readings: []*ingestv1.Reading{{SensorId: 12, Value: &ingestv1.Reading_LongValue{LongValue: 9}}}})
			cases := []struct {
				name     string
				typ      websocket.MessageType
				msg      string
				block    bool
				status   int
				accepted int
				seq      uint64
			}{
				{"array", websocket.MessageText, `[{"sensor_id":11,"value":1},{"sensor_id":13,"value":true}]`, false, 200, 2, 0},
				{"envelope with seq", websocket.MessageText, `{"seq":42,"readings":[{"sensor_id":11,"value":1}]}`, false, 200, 1, 42},
				{"protobuf", websocket.MessageBinary, string(pb), false, 200, 1, 0},
				{"malformed", websocket.MessageText, `{"sensor_id":`, false, 400, 0, 0},
				{"other device's sensor", websocket.MessageText, `{"sensor_id":21,"value":1}`, false, 422, 0, 0},
				{"bus blocked", websocket.MessageText, `{"sensor_id":11,"value":1}`, true, 503, 0, 0},
			}
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					if c.block {
						defer e.Sink.Block()()
					}
					before := len(e.Sink.Records())
					a := roundTrip(t, conn, c.typ, []byte(c.msg))
					if a.Index != i || a.Status != c.status || a.Accepted != c.accepted {
						t.Fatalf("ack %+v, want index %d status %d accepted %d", a, i, c.status, c.accepted)
					}
					if c.seq != 0 && (a.Seq == nil || *a.Seq != c.seq) {
						t.Fatalf("seq not echoed: %+v", a)
					}
					if c.status == 200 && len(e.Sink.Records())-before != c.accepted {
						t.Fatal("acked before durable")
					}
					if c.status != 200 && len(a.Errors) == 0 {
						t.Fatal("error frame without errors")
					}
				})
			}
		})
	}
}

func TestWS_IdleTimeoutAndRevocation(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			e := ingesttest.New(t, ingesttest.Options{})
			cfg := m.cfg
			cfg.IdleTimeout, cfg.PingInterval = 200*time.Millisecond, 50*time.Millisecond
			url := serve(t, e, cfg, m.tls)
			h := http.Header{"Authorization": {"Bearer " + e.DeviceToken(t, ingesttest.DeviceA)}}

			t.Run("idle connection closed", func(t *testing.T) {
				c, _, err := dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: h})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_, _, err = c.Read(ctx)
				if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
					t.Fatalf("read on idle connection = %v, want close 1008", err)
				}
			})

			t.Run("a silent client does not stall another", func(t *testing.T) {
				silent, _, err := dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: h})
				if err != nil {
					t.Fatal(err)
				}
				defer silent.CloseNow()
				_ = silent.Write(context.Background(), websocket.MessageText, []byte(`{"sensor_id":11,"value":1}`)) // never reads its ack
				c, _, err := dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: h})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				if a := roundTrip(t, c, websocket.MessageText, []byte(`{"sensor_id":11,"value":2}`)); a.Status != 200 {
					t.Fatalf("ack %+v", a)
				}
			})

			t.Run("rotated key closes the connection", func(t *testing.T) {
				tok := e.DeviceToken(t, ingesttest.DeviceB)
				c, _, err := dial(context.Background(), url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
				if err != nil {
					t.Fatal(err)
				}
				defer c.CloseNow()
				if a := roundTrip(t, c, websocket.MessageText, []byte(`{"sensor_id":21,"value":2}`)); a.Status != 200 {
					t.Fatalf("ack %+v", a)
				}
				e.Sensors.Rotate(ingesttest.DeviceB)
				deadline := time.Now().Add(10 * time.Second)
				for {
					a := roundTrip(t, c, websocket.MessageText, []byte(`{"sensor_id":21,"value":3}`))
					if a.Status == http.StatusForbidden {
						if a.Code != "permission_denied" || a.Message == "" {
							t.Fatalf("rotation ack %+v, want code permission_denied with a message", a)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("rotated token still accepted")
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		})
	}
}
