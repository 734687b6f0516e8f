package e2e

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	pahov3packets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// TestTokens_ExpiredDeviceKeyOnStreamingEdges: a device key that expires
// ends the sessions opened with it like a rotated key does (WebSocket,
// MQTT 5, MQTT 3.1.1, IngestStream: the next message is refused, nothing
// after the expiry is acknowledged or stored), and a new MQTT CONNECT with
// it is refused like any invalid credential (docs/INGEST.md): MQTT 5
// reason 0x86 "bad user name or password", MQTT 3.1.1 return code 5 "not
// authorized" (as mosquitto answers a refused password; 4 is kept for
// malformed credential fields).
func TestTokens_ExpiredDeviceKeyOnStreamingEdges(t *testing.T) {
	p := Start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin := p.AdminToken()
	d := p.NewDevice(admin, "expiring-streams", "double")
	start := time.Now().Add(-time.Minute)
	const ttl = 4 * time.Second
	rot := p.Do("POST", "/api/devices/"+d.ID+"/key/rotate", admin, map[string]string{"ttl": "4s"})
	if rot.Status != 200 || rot.Str("token") == "" || rot.Str("expire_time") == "" {
		t.Fatalf("rotate with ttl: %d %s", rot.Status, rot.Body)
	}
	rotated := time.Now()
	d.Token = rot.Str("token")

	// Open one session per streaming edge and push one reading on each.
	ws, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + d.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	wssPush(ctx, t, ws, d.SensorID, "1")

	m5 := mqttV5(t, p, d)
	if r, err := m5.Publish(ctx, &paho.Publish{Topic: d.ID, QoS: 1, Payload: []byte(`{"sensor_id":` + d.SensorID + `,"value":2}`)}); err != nil || r.ReasonCode != 0 {
		t.Fatalf("mqtt 5 publish with a fresh key: %v %v", r, err)
	}
	m3 := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("exp3-" + d.ID).
		SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(4).SetAutoReconnect(false))
	if tk := m3.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt 3.1.1 connect with a fresh key: %v", tk.Error())
	}
	defer m3.Disconnect(0)
	if tk := m3.Publish(d.ID, 1, false, `{"sensor_id":`+d.SensorID+`,"value":3}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt 3.1.1 publish: %v", tk.Error())
	}
	stream, err := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(d.Token)).Ingest.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(ingestBatch(t, d, 4)); err != nil {
		t.Fatal(err)
	}
	if ack, err := stream.Receive(); err != nil || ack.GetAccepted() != 1 {
		t.Fatalf("ingest stream ack with a fresh key: %v %v", ack, err)
	}
	if time.Since(rotated) >= ttl {
		t.Fatalf("setup took longer than the key's %v lifetime; the test proves nothing", ttl)
	}

	time.Sleep(time.Until(rotated.Add(ttl + 500*time.Millisecond)))

	// WebSocket: the next message is answered 401 and the socket closed.
	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"sensor_id":`+d.SensorID+`,"value":10}`)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := ws.Read(ctx); err != nil || !strings.Contains(string(ack), `"status":401`) {
		t.Fatalf("websocket after expiry: %s %v, want a 401 ack", ack, err)
	}
	if _, _, err := ws.Read(ctx); websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
		t.Fatalf("websocket after expiry not closed with policy violation: %v", err)
	}
	// MQTT 5: the publish is not acknowledged, the session is ended.
	pctx, pcancel := context.WithTimeout(ctx, 5*time.Second)
	if r, err := m5.Publish(pctx, &paho.Publish{Topic: d.ID, QoS: 1, Payload: []byte(`{"sensor_id":` + d.SensorID + `,"value":11}`)}); err == nil && r.ReasonCode == 0 {
		t.Fatalf("mqtt 5 publish with an expired key acknowledged")
	}
	pcancel()
	// MQTT 3.1.1: the connection is closed.
	m3.Publish(d.ID, 1, false, `{"sensor_id":`+d.SensorID+`,"value":12}`).WaitTimeout(2 * time.Second)
	for deadline := time.Now().Add(10 * time.Second); m3.IsConnectionOpen(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("mqtt 3.1.1 session of an expired key still open")
		}
	}
	// IngestStream: ends unauthenticated, the batch unacknowledged.
	_ = stream.Send(ingestBatch(t, d, 13))
	if ack, err := stream.Receive(); err == nil {
		t.Fatalf("ingest stream of an expired key acked %v", ack)
	} else if connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Fatalf("ingest stream ended with %v, want unauthenticated", err)
	}

	// A new CONNECT with the expired key: bad user name or password.
	conn, err := net.Dial("tcp", p.MQTT)
	if err != nil {
		t.Fatal(err)
	}
	c5 := paho.NewClient(paho.ClientConfig{Conn: conn})
	ca, _ := c5.Connect(ctx, &paho.Connect{ClientID: "exp5-again-" + d.ID, KeepAlive: 30, CleanStart: true,
		Username: "JWT", UsernameFlag: true, Password: []byte(d.Token), PasswordFlag: true})
	if ca == nil || ca.ReasonCode != 0x86 {
		t.Fatalf("mqtt 5 connect with an expired key: connack %+v, want reason 0x86 bad user name or password", ca)
	}
	again := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("exp3-again-" + d.ID).
		SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false))
	if tk := again.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != pahov3packets.ErrorRefusedNotAuthorised {
		t.Fatalf("mqtt 3.1.1 connect with an expired key: %v, want return code 5 (not authorized)", tk.Error())
	}

	// Exactly the four readings pushed before the expiry are stored.
	rs := readingsREST(t, p, admin, d.SensorID, "from="+start.UTC().Format(time.RFC3339)+"&to="+time.Now().Add(time.Minute).UTC().Format(time.RFC3339))
	got := map[any]bool{}
	for _, r := range rs {
		got[r["double_value"]] = true
	}
	if len(rs) != 4 || !got[1.0] || !got[2.0] || !got[3.0] || !got[4.0] {
		t.Fatalf("stored readings = %v, want exactly 1..4 (nothing after the key expired)", rs)
	}
}
