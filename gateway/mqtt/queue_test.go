package mqtt

import (
	"log/slog"
	"strconv"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

func startInternal(t *testing.T, cfg Config) (*ingesttest.Env, *Gateway, pahov3.Client) {
	t.Helper()
	e, g, addr := startEdge(t, cfg)
	o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("q" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetUsername("JWT").SetPassword(e.DeviceToken(t, ingesttest.DeviceA)).SetProtocolVersion(4).SetAutoReconnect(false)
	c := pahov3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return e, g, c
}

func onlySession(t *testing.T, g *Gateway) *session {
	t.Helper()
	var s *session
	g.sessions.Range(func(_, v any) bool { s = v.(*session); return false })
	if s == nil {
		t.Fatal("no session")
	}
	return s
}

// TestMQTT_BufferSizesApplied: the per-connection allocations follow the
// configuration (mochi's outbound queue and read buffer), with small
// defaults.
func TestMQTT_BufferSizesApplied(t *testing.T) {
	for _, tc := range []struct {
		cfg               Config
		outbound, readBuf int
	}{{Config{}, 16, 512}, {Config{OutboundQueue: 4, ReadBuffer: 128}, 4, 128}} {
		g, err := New(slog.New(slog.DiscardHandler), nil, nil, tc.cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		o := g.srv.Options
		if int(o.Capabilities.MaximumClientWritesPending) != tc.outbound || o.ClientNetReadBufferSize != tc.readBuf {
			t.Errorf("%+v: outbound queue %d, read buffer %d; want %d, %d", tc.cfg, o.Capabilities.MaximumClientWritesPending,
				o.ClientNetReadBufferSize, tc.outbound, tc.readBuf)
		}
	}
}

// TestMQTT_IdleClientKeepsNoQueueNorWorker: once its publishes are acked,
// a client holds no queue and no worker goroutine; the next publish starts
// one again.
func TestMQTT_IdleClientKeepsNoQueueNorWorker(t *testing.T) {
	e, g, c := startInternal(t, Config{})
	s := onlySession(t, g)
	for i := range 2 {
		tok := c.Publish("1", 1, false, `{"sensor_id":12,"timestamp":`+strconv.Itoa(1526717967+i)+`,"value":1}`)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
		deadline := time.Now().Add(5 * time.Second)
		for {
			s.mu.Lock()
			idle := !s.working && s.q == nil
			s.mu.Unlock()
			if idle {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("publish %d acked but the session still holds a queue or a worker", i)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if n := len(e.Sink.Records()); n != 2 {
		t.Fatalf("%d stored, want 2", n)
	}
}

func workersAlive(g *Gateway) int { return g.workers.Alive() }

// TestMQTT_WorkersReused: a worker with nothing queued takes the next
// publishes instead of a new goroutine being started per publish, and
// ends once nothing came for workerIdle.
func TestMQTT_WorkersReused(t *testing.T) {
	e, g, c := startInternal(t, Config{})
	g.workers.SetIdle(500 * time.Millisecond)
	publish := func(i int) {
		t.Helper()
		tok := c.Publish("1", 1, false, `{"sensor_id":12,"timestamp":`+strconv.Itoa(1526717967+i)+`,"value":1}`)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	for i := range 5 {
		publish(i)
		time.Sleep(20 * time.Millisecond) // the queue drained: the worker waits for work
	}
	if n := g.workers.Started(); n != 1 {
		t.Fatalf("%d workers started for 5 publishes in a row, want 1 reused", n)
	}
	if n := workersAlive(g); n != 1 {
		t.Fatalf("%d workers alive, want the 1 waiting for work", n)
	}
	time.Sleep(g.workers.Idle() + 300*time.Millisecond)
	if n := workersAlive(g); n != 0 {
		t.Fatalf("%d workers alive after the idle time: the idle worker did not end", n)
	}
	publish(5)
	if n := g.workers.Started(); n != 2 {
		t.Fatalf("%d workers started, want a new one after the idle one ended", n)
	}
	if n := len(e.Sink.Records()); n != 6 {
		t.Fatalf("%d stored, want 6", n)
	}
}

// TestMQTT_RoundsMergeClients: with Workers 2 and the bus blocked, 40
// clients publishing at once hold at most 2 workers; once the bus recovers
// every publish is acked, and their readings reached the bus in far fewer
// publishes than clients (one round takes every client ready).
func TestMQTT_RoundsMergeClients(t *testing.T) {
	for _, perConn := range []bool{false, true} {
		t.Run("goroutine per connection "+strconv.FormatBool(perConn), func(t *testing.T) {
			e, g, addr := startEdge(t, Config{Workers: 2, GoroutinePerConnection: perConn})
			token := e.DeviceToken(t, ingesttest.DeviceA)
			const n = 40
			conns := connectedMany(t, addr, "m", token, n)
			unblock := e.Sink.Block()
			for i, c := range conns {
				if _, err := c.Write(publishPacket(ingesttest.DeviceA, 1, 1526717967+i)); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(300 * time.Millisecond)
			if w := workersAlive(g); w > 2 {
				t.Fatalf("%d workers with the bus blocked, bound is 2", w)
			}
			unblock()
			for i, c := range conns {
				expect(t, c, "puback "+strconv.Itoa(i), puback(1))
			}
			if got := len(e.Sink.Records()); got != n {
				t.Fatalf("%d stored, want %d", got, n)
			}
			if b := e.Sink.Batches(); b > n/4 {
				t.Fatalf("%d bus publishes for %d clients: rounds did not merge them", b, n)
			}
		})
	}
}

// TestMQTT_RoundKeepsEachClientsOrder: one round holds two clients' publishes,
// one client's with an invalid payload in the middle (dead-lettered, MQTT
// 3.1.1): every PUBACK comes in publish order, each valid reading is
// stored once, and the invalid one is dead-lettered.
func TestMQTT_RoundKeepsEachClientsOrder(t *testing.T) {
	e, _, addr := startEdge(t, Config{Workers: 1})
	token := e.DeviceToken(t, ingesttest.DeviceA)
	a := connected(t, addr, "a", token, 60)
	b := connected(t, addr, "b", token, 60)
	unblock := e.Sink.Block()
	bad := packet(0x32, append(append(mqttString("1"), 0, 2), "not json"...))
	var burst []byte
	burst = append(burst, publishPacket(ingesttest.DeviceA, 1, 1526717967)...)
	burst = append(burst, bad...)
	burst = append(burst, publishPacket(ingesttest.DeviceA, 3, 1526717969)...)
	if _, err := a.Write(burst); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Write(publishPacket(ingesttest.DeviceA, 7, 1526717970)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	unblock()
	expect(t, a, "pubacks of a", append(append(puback(1), puback(2)...), puback(3)...))
	expect(t, b, "puback of b", puback(7))
	recs := e.Sink.Records()
	if len(recs) != 3 {
		t.Fatalf("%d stored, want 3", len(recs))
	}
	seen := map[int64]int{}
	for _, r := range recs {
		seen[r.GetTimestampNs()/1e9]++
	}
	for _, ts := range []int64{1526717967, 1526717969, 1526717970} {
		if seen[ts] != 1 {
			t.Fatalf("reading at %d stored %d times, want once (stored: %v)", ts, seen[ts], seen)
		}
	}
	if dl := e.Sink.DeadLetters(); len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
}

// TestMQTT_FullQueueStopsReadingUntilDurable: with QueueSize 2 and the bus
// blocked, the client's queue never holds more than 2 publishes and no
// PUBACK is written; once the bus recovers, all are acked and stored in
// order.
func TestMQTT_FullQueueStopsReadingUntilDurable(t *testing.T) {
	e, g, c := startInternal(t, Config{QueueSize: 2})
	s := onlySession(t, g)
	unblock := e.Sink.Block()
	const n = 6
	toks := make([]pahov3.Token, n)
	for i := range toks {
		toks[i] = c.Publish("1", 1, false, `{"sensor_id":12,"timestamp":`+strconv.Itoa(1526717967+i)+`,"value":`+strconv.Itoa(i)+`}`)
	}
	time.Sleep(300 * time.Millisecond)
	s.mu.Lock()
	queued := len(s.q)
	s.mu.Unlock()
	if queued > 2 {
		t.Fatalf("%d publishes queued, bound is 2", queued)
	}
	for i, tk := range toks {
		if tk.WaitTimeout(0) {
			t.Fatalf("publish %d acked while the bus was blocked", i)
		}
	}
	unblock()
	for i, tk := range toks {
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("publish %d: %v", i, tk.Error())
		}
	}
	e.Sink.WantInOrder(t, n)
}
