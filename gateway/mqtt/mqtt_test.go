package mqtt_test

import (
	"context"
	"io"
	"net"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"google.golang.org/protobuf/proto"

	gwmqtt "github.com/iotplatform/iotplatform/gateway/mqtt"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

func start(t *testing.T, opt ingesttest.Options) (*ingesttest.Env, string) {
	t.Helper()
	return startWith(t, opt, gwmqtt.Config{})
}

// modes are the two ways the gateway reads clients: epoll (the default on
// Linux) and mochi's own loop (--mqtt-epoll=false, other platforms).
var modes = []struct {
	name string
	cfg  gwmqtt.Config
}{{"epoll", gwmqtt.Config{}}, {"mochi loop", gwmqtt.Config{GoroutinePerConnection: true}}}

func startWith(t *testing.T, opt ingesttest.Options, cfg gwmqtt.Config) (*ingesttest.Env, string) {
	t.Helper()
	e := ingesttest.New(t, opt)
	g, err := gwmqtt.New(e.Log, e.Verifier, e.Service, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, ln.Addr().String()
}

// v3client connects with paho.mqtt.golang: version 3 is MQTT 3.1 (MQIsdp),
// 4 is 3.1.1.
func v3client(t *testing.T, addr string, version uint, password string) (pahov3.Client, error) {
	o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("c" + strconv.FormatInt(time.Now().UnixNano(), 36)).
		SetUsername("JWT").SetPassword(password).SetProtocolVersion(version).SetAutoReconnect(false).SetConnectRetry(false)
	c := pahov3.NewClient(o)
	tok := c.Connect()
	tok.Wait()
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return c, tok.Error()
}

func v5client(t *testing.T, addr string, password string) (*paho.Client, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := paho.NewClient(paho.ClientConfig{Conn: conn})
	ca, err := c.Connect(context.Background(), &paho.Connect{ClientID: "v5" + strconv.FormatInt(time.Now().UnixNano(), 36),
		KeepAlive: 30, CleanStart: true, Username: "JWT", UsernameFlag: true, Password: []byte(password), PasswordFlag: true})
	if err != nil {
		return nil, err
	}
	if ca.ReasonCode != 0 {
		return nil, &net.OpError{Op: "connack " + strconv.Itoa(int(ca.ReasonCode))}
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, nil
}

func TestMQTT3_PublishAckedWhenDurable(t *testing.T) {
	for _, m := range modes {
		for _, v := range []uint{3, 4} {
			t.Run(m.name+"/version "+strconv.Itoa(int(v)), func(t *testing.T) { testMQTT3PublishAckedWhenDurable(t, m.cfg, v) })
		}
	}
}

func testMQTT3PublishAckedWhenDurable(t *testing.T, cfg gwmqtt.Config, v uint) {
	e, addr := startWith(t, ingesttest.Options{}, cfg)
	c, err := v3client(t, addr, v, e.DeviceToken(t, ingesttest.DeviceA))
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Publish("1", 1, false, `[{"sensor_id":"11","timestamp":1526717967,"value":"2.5"},{"sensor_id":12,"value":7}]`)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if r := e.Sink.Records(); len(r) != 2 || r[0].GetDoubleValue() != 2.5 || r[0].GetProtocol() != "mqtt" {
		t.Fatalf("stored %v", r)
	}
	// Invalid payloads cannot be refused in 3.x: dead-lettered, then acked.
	tok = c.Publish("1", 1, false, `{"sensor_id":21,"value":1}`)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if dls := e.Sink.DeadLetters(); len(dls) != 1 || dls[0].DeviceID != 1 || dls[0].Protocol != "mqtt" {
		t.Fatalf("dead letters %+v", dls)
	}
	if n := len(e.Sink.Records()); n != 2 {
		t.Fatalf("%d records stored, want 2", n)
	}
}

func TestMQTT_RefusesBadCredentials(t *testing.T) {
	e, addr := start(t, ingesttest.Options{})
	for name, pw := range map[string]string{"garbage": "nope", "user token": e.Token(t, "user", 1)} {
		t.Run(name, func(t *testing.T) {
			if _, err := v3client(t, addr, 4, pw); err == nil {
				t.Fatal("3.1.1 connect accepted")
			}
			if _, err := v5client(t, addr, pw); err == nil {
				t.Fatal("5 connect accepted")
			}
		})
	}
}

func TestMQTT3_OtherDevicesTopicDisconnects(t *testing.T) {
	e, addr := start(t, ingesttest.Options{})
	c, err := v3client(t, addr, 4, e.DeviceToken(t, ingesttest.DeviceA))
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Publish("2", 1, false, `{"sensor_id":21,"value":1}`)
	tok.WaitTimeout(2 * time.Second)
	for i := 0; i < 100 && c.IsConnected(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if c.IsConnected() {
		t.Fatal("client publishing to another device's topic is still connected")
	}
	if n := len(e.Sink.Records()); n != 0 {
		t.Fatalf("%d records stored", n)
	}
}

func TestMQTT5_ReasonCodes(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) { testMQTT5ReasonCodes(t, m.cfg) })
	}
}

func testMQTT5ReasonCodes(t *testing.T, cfg gwmqtt.Config) {
	e, addr := startWith(t, ingesttest.Options{}, cfg)
	c, err := v5client(t, addr, e.DeviceToken(t, ingesttest.DeviceA))
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := proto.Marshal(&ingestv1.ReadingBatch{Readings: []*ingestv1.Reading{{SensorId: 13, Value: &ingestv1.Reading_BoolValue{BoolValue: true}}}})
	cases := []struct {
		name, topic string
		payload     []byte
		code        byte
	}{
		{"json", "1", []byte(`{"sensor_id":11,"value":1}`), 0},
		{"protobuf", "1", pb, 0},
		{"malformed", "1", []byte(`{"sensor_id":`), 0x99},
		{"other device's sensor", "1", []byte(`{"sensor_id":21,"value":1}`), 0x83},
		{"uncoercible", "1", []byte(`{"sensor_id":13,"value":"perhaps"}`), 0x83},
		{"other device's topic", "2", []byte(`{"sensor_id":21,"value":1}`), 0x87},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			before := len(e.Sink.Records())
			pr, err := c.Publish(ctx, &paho.Publish{Topic: tc.topic, QoS: 1, Payload: tc.payload})
			if pr == nil {
				t.Fatalf("no PUBACK: %v", err)
			}
			if pr.ReasonCode != tc.code {
				t.Fatalf("reason code %#x, want %#x", pr.ReasonCode, tc.code)
			}
			if stored := len(e.Sink.Records()) - before; (tc.code == 0) != (stored == 1) {
				t.Fatalf("%d stored", stored)
			}
		})
	}
}

func TestMQTT_NoPubackUntilDurable(t *testing.T) {
	e, addr := start(t, ingesttest.Options{PublishTimeout: 30 * time.Second})
	c, err := v3client(t, addr, 4, e.DeviceToken(t, ingesttest.DeviceA))
	if err != nil {
		t.Fatal(err)
	}
	unblock := e.Sink.Block()
	tok := c.Publish("1", 1, false, `{"sensor_id":11,"value":1}`)
	if tok.WaitTimeout(300 * time.Millisecond) {
		t.Fatal("PUBACK arrived while the bus was blocked")
	}
	unblock()
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("no PUBACK after the bus recovered: %v", tok.Error())
	}
	if n := len(e.Sink.Records()); n != 1 {
		t.Fatalf("%d stored", n)
	}
}

func TestMQTT_MosquittoPub(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Skip("mosquitto_pub not installed (scripts/install-test-tools.sh)")
	}
	e, addr := start(t, ingesttest.Options{})
	host, port, _ := net.SplitHostPort(addr)
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	for i, v := range []string{"mqttv31", "mqttv311", "mqttv5"} {
		t.Run(v, func(t *testing.T) {
			out, err := exec.Command(bin, "-h", host, "-p", port, "-V", v, "-q", "1", "-u", "JWT", "-P", tok,
				"-t", "1", "-m", `{"sensor_id":"14","timestamp":1526717967,"value":"91827364"}`).CombinedOutput()
			if err != nil {
				t.Fatalf("mosquitto_pub: %v: %s", err, out)
			}
			if n := len(e.Sink.Records()); n != i+1 {
				t.Fatalf("%d stored, want %d", n, i+1)
			}
			out, err = exec.Command(bin, "-h", host, "-p", port, "-V", v, "-q", "1", "-u", "JWT", "-P", "bad",
				"-t", "1", "-m", `{}`).CombinedOutput()
			if err == nil {
				t.Fatalf("mosquitto_pub with a bad token succeeded: %s", out)
			}
		})
	}
}

func TestMQTT_ManyInFlightAllAckedInOrder(t *testing.T) {
	e, addr := start(t, ingesttest.Options{})
	c, err := v3client(t, addr, 4, e.DeviceToken(t, ingesttest.DeviceA))
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	toks := make([]pahov3.Token, n)
	for i := range toks {
		toks[i] = c.Publish("1", 1, false, `{"sensor_id":12,"timestamp":`+strconv.Itoa(1526717967+i)+`,"value":`+strconv.Itoa(i)+`}`)
	}
	for i, tk := range toks {
		if !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
			t.Fatalf("publish %d: %v", i, tk.Error())
		}
	}
	e.Sink.WantInOrder(t, n)
}

func TestMQTT_RotatedKeyDisconnects(t *testing.T) {
	e, addr := start(t, ingesttest.Options{})
	c, err := v3client(t, addr, 4, e.DeviceToken(t, ingesttest.DeviceB))
	if err != nil {
		t.Fatal(err)
	}
	if tk := c.Publish("2", 1, false, `{"sensor_id":21,"value":1}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("publish: %v", tk.Error())
	}
	e.Sensors.Rotate(ingesttest.DeviceB)
	deadline := time.Now().Add(10 * time.Second)
	for c.IsConnected() {
		if time.Now().After(deadline) {
			t.Fatal("client with a rotated key still connected")
		}
		c.Publish("2", 1, false, `{"sensor_id":21,"value":1}`).WaitTimeout(100 * time.Millisecond)
	}
	// Publishes within the auth cache TTL are still accepted (the documented
	// staleness bound); once refused, the client is disconnected.
	if _, err := v3client(t, addr, 4, e.DeviceToken(t, ingesttest.DeviceB)); err == nil {
		t.Fatal("reconnect with the rotated token accepted")
	}
}

// TestMQTT_OversizedPacketIsNotRead: a CONNECT announcing 200 MiB is refused
// from its header, before anything is allocated or authenticated.
func TestMQTT_OversizedPacketIsNotRead(t *testing.T) {
	_, addr := start(t, ingesttest.Options{})
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// CONNECT fixed header with a remaining length of 200 MiB (varint).
	n, hdr := 200<<20, []byte{0x10}
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		hdr = append(hdr, b)
		if n == 0 {
			break
		}
	}
	if _, err := conn.Write(append(hdr, make([]byte, 1024)...)); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	if _, err := conn.Read(buf); err == nil || isTimeout(err) {
		t.Fatalf("connection still open after an oversized CONNECT (err %v)", err)
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}

// TestMQTT_ClientIDCannotTakeOverAnotherDevice: device B connecting with
// device A's client id must not disconnect A.
func TestMQTT_ClientIDCannotTakeOverAnotherDevice(t *testing.T) {
	e, addr := start(t, ingesttest.Options{})
	connect := func(dev int64) pahov3.Client {
		o := pahov3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("shared-id").
			SetUsername("JWT").SetPassword(e.DeviceToken(t, dev)).SetProtocolVersion(4).SetAutoReconnect(false)
		c := pahov3.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("connect device %d: %v", dev, tok.Error())
		}
		t.Cleanup(func() { c.Disconnect(100) })
		return c
	}
	a := connect(ingesttest.DeviceA)
	connect(ingesttest.DeviceB)
	time.Sleep(300 * time.Millisecond)
	if !a.IsConnectionOpen() {
		t.Fatal("device B's CONNECT with the same client id disconnected device A")
	}
}

// TestMQTT_QoS2IsRefused: a QoS 2 publish closes the connection instead of
// being answered with a PUBACK the client does not expect; nothing is stored.
func TestMQTT_QoS2IsRefused(t *testing.T) {
	e, addr := start(t, ingesttest.Options{})
	c, err := v3client(t, addr, 4, e.DeviceToken(t, ingesttest.DeviceA))
	if err != nil {
		t.Fatal(err)
	}
	tok := c.Publish(strconv.Itoa(ingesttest.DeviceA), 2, false, `{"sensor_id":11,"value":1}`)
	tok.WaitTimeout(2 * time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for c.IsConnectionOpen() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if c.IsConnectionOpen() {
		t.Fatal("connection still open after a QoS 2 publish")
	}
	if n := len(e.Sink.Records()); n != 0 {
		t.Fatalf("%d readings stored from a refused QoS 2 publish", n)
	}
}

// TestMQTT3_ConnackUsesMQTT311ReturnCodes: a bad protocol name and a
// password flag with an empty password are answered with 3.1.1 CONNACK
// return codes (0x01, 0x04), not MQTT 5's 0x82.
func TestMQTT3_ConnackUsesMQTT311ReturnCodes(t *testing.T) {
	_, addr := start(t, ingesttest.Options{})
	connect := func(name string, flags byte, payload []byte) byte {
		t.Helper()
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		vh := append([]byte{0, byte(len(name))}, name...)
		vh = append(vh, 4, flags, 0, 60) // level 4 (3.1.1), flags, keepalive
		body := append(vh, payload...)
		if _, err := conn.Write(append([]byte{0x10, byte(len(body))}, body...)); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4)
		if _, err := io.ReadFull(conn, buf); err != nil {
			t.Fatalf("no CONNACK: %v", err)
		}
		if buf[0] != 0x20 {
			t.Fatalf("not a CONNACK: % x", buf)
		}
		return buf[3]
	}
	clientID := []byte{0, 2, 'c', '1'}
	if code := connect("MQTX", 0x02, clientID); code != 0x01 {
		t.Errorf("bad protocol name: return code %#x, want 0x01", code)
	}
	user := []byte{0, 3, 'J', 'W', 'T'}
	emptyPassword := []byte{0, 0}
	if code := connect("MQTT", 0x02|0x80|0x40, append(append(append([]byte{}, clientID...), user...), emptyPassword...)); code != 0x04 {
		t.Errorf("empty password: return code %#x, want 0x04", code)
	}
}
