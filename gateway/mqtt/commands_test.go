package mqtt

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/testenv"
	"github.com/iotplatform/iotplatform/services/command"
	"github.com/iotplatform/iotplatform/services/command/commandtest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

// sqliteRegistry is a fresh SQLite registry, closed when the test ends.
func sqliteRegistry(t *testing.T) *registrysql.DB {
	reg, err := registrysql.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "registry.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	return reg
}

func TestCommandACL_OnlyTheDevicesOwnCommandTopics(t *testing.T) {
	g := &Gateway{cmds: (*command.Service)(nil)}
	s := &session{device: 42, topic: "42"}
	for _, tc := range []struct {
		topic string
		write bool
		want  bool
	}{
		{"42/commands", false, true},
		{"42/commands/#", false, true},
		{"42/commands/+", false, true},
		{"43/commands/#", false, false},
		{"+/commands/#", false, false},
		{"#", false, false},
		{"42/#", false, false},
		{"42/commands/response", false, false},
		{"42/commands/7/response", true, true},
		{"42/commands/response", true, true},
		{"42/state/reported", true, true},
		{"43/commands/7/response", true, false},
		{"42/commands/x/response", true, false},
		{"42/commands/7", true, false},
		{"42/commands", true, false},
		{"43/state/reported", true, false},
	} {
		if got := g.commandACL(s, tc.topic, tc.write); got != tc.want {
			t.Errorf("commandACL(%q, write=%v) = %v, want %v", tc.topic, tc.write, got, tc.want)
		}
	}
	if (&Gateway{}).commandACL(s, "42/commands", false) {
		t.Error("subscriptions allowed with commands disabled")
	}
}

// subscribePacket is an MQTT 3.1.1 SUBSCRIBE to topic at QoS 1.
func subscribePacket(pid uint16, topic string) []byte {
	body := append([]byte{byte(pid >> 8), byte(pid)}, mqttString(topic)...)
	return packet(0x82, append(body, 1))
}

// readPacket reads one MQTT packet (its first byte and body).
func readPacket(conn net.Conn) (byte, []byte, error) {
	r := bufio.NewReader(conn)
	h, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		mul *= 128
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return h, body, err
}

// TestCommands_IdleSubscribersHoldNoGoroutine: 50 devices subscribed to
// their command topic hold no more goroutines than before subscribing (a
// sender goroutine each before), and a command still arrives.
func TestCommands_IdleSubscribersHoldNoGoroutine(t *testing.T) {
	const n = 50
	e := ingesttest.New(t, ingesttest.Options{})
	cmds := commandtest.New(t, e.Log, sqliteRegistry(t), ingesttest.DeviceA)
	g, err := New(e.Log, e.Verifier, e.Service, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.EnableCommands(cmds.Service)
	conns := connectedMany(t, serveEdge(t, g), "sub", e.DeviceToken(t, ingesttest.DeviceA), n)
	time.Sleep(readerIdle) // idle readers end
	before := testenv.SettledGoroutines()
	for i, c := range conns {
		if _, err := c.Write(subscribePacket(uint16(i+1), "1/commands")); err != nil {
			t.Fatal(err)
		}
		expect(t, c, "suback", []byte{0x90, 3, byte((i + 1) >> 8), byte(i + 1), 1})
	}
	time.Sleep(readerIdle)
	if after := testenv.SettledGoroutines(); after-before >= n/5 {
		t.Fatalf("%d subscribed devices: %d goroutines, %d before subscribing", n, after, before)
	}
	id := cmds.Send(t, "reboot")
	// One subscriber (the newest session) gets it, as a QoS 1 publish on
	// 1/commands.
	type got struct {
		h    byte
		body []byte
	}
	first := make(chan got, n)
	for _, c := range conns {
		go func() {
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			if h, body, err := readPacket(c); err == nil {
				first <- got{h, body}
			}
		}()
	}
	select {
	case g := <-first:
		if g.h != 0x32 || !bytes.HasPrefix(g.body, mqttString("1/commands")) || !bytes.Contains(g.body, []byte(`"id":`+strconv.FormatInt(id, 10)+`,`)) {
			t.Fatalf("a subscriber got %#x %q, want the command %d", g.h, g.body, id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no subscriber got the command")
	}
}

// TestWriteCommand_ClientThatDoesNotReadIsStopped: a command write to a
// client that reads nothing gives up after the write timeout and stops
// the client, instead of holding the device's dispatcher.
func TestWriteCommand_ClientThatDoesNotReadIsStopped(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	g, err := New(e.Log, e.Verifier, e.Service, Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.cmdWriteTimeout = 100 * time.Millisecond
	server, client := net.Pipe() // a write waits for a read, which never comes
	defer client.Close()
	cl := g.srv.NewClient(server, "test", "dev", false)
	cl.Properties.ProtocolVersion = 4
	s := &session{device: 1, topic: "1"}
	cs := &cmdSession{pending: map[uint16]int64{}, qos: 1}
	written := make(chan bool, 1)
	go func() {
		written <- g.writeCommand(context.Background(), cl, s, cs, registry.Command{ID: 7, DeviceID: 1, Name: "reboot", ExpiresAt: time.Now().Add(time.Hour)})
	}()
	select {
	case ok := <-written:
		if ok {
			t.Fatal("writeCommand reported a write nobody read")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("writeCommand still waiting for a client that does not read")
	}
	if !cl.Closed() || !errors.Is(cl.StopCause(), errCommandNotRead) {
		t.Fatalf("client closed %v, cause %v", cl.Closed(), cl.StopCause())
	}
}
