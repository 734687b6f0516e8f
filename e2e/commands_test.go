package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	"github.com/eclipse/paho.golang/paho"
	"google.golang.org/protobuf/types/known/structpb"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// sendCommand sends a command through REST and returns its id.
func sendCommand(t *testing.T, p *Platform, tok, device, name string, body map[string]any) string {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	body["name"] = name
	r := p.Do("POST", "/api/devices/"+device+"/commands", tok, body)
	if r.Status != 200 || r.Str("result.id") == "" {
		t.Fatalf("send command: %d %s", r.Status, r.Body)
	}
	return r.Str("result.id")
}

// waitStatus polls GET /api/commands/{id} until the status is want.
func waitStatus(t *testing.T, p *Platform, tok, id, want string) Response {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		r := p.Do("GET", "/api/commands/"+id, tok, nil)
		if r.Str("result.status") == want {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("command %s: status %s, want %s: %s", id, r.Str("result.status"), want, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// history returns the statuses of a command's history.
func history(r Response) []string {
	var out []string
	res, _ := r.JSON["result"].(map[string]any)
	hs, _ := res["history"].([]any)
	for _, h := range hs {
		m, _ := h.(map[string]any)
		s, _ := m["status"].(string)
		if s == "" || m["time"] == nil {
			continue
		}
		out = append(out, strings.TrimPrefix(s, "COMMAND_STATUS_"))
	}
	return out
}

// mosquittoSub starts mosquitto_sub as the device on topic and returns
// its output lines (topic and payload, -v).
func mosquittoSub(t *testing.T, ctx context.Context, p *Platform, d Device, version, topic string) (<-chan string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("mosquitto_sub")
	if err != nil {
		t.Fatal("mosquitto_sub not installed: run scripts/install-test-tools.sh")
	}
	host, port, _ := net.SplitHostPort(p.MQTT)
	cmd := exec.CommandContext(ctx, bin, "-h", host, "-p", port, "-V", version, "-q", "1", "-u", "JWT", "-P", d.Token,
		"-i", "sub-"+d.ID+"-"+randHex(3), "-t", topic, "-v")
	out, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	t.Cleanup(func() {
		if cmd.Process != nil {
			cmd.Process.Kill()
		}
		cmd.Wait()
	})
	return lines, cmd
}

func nextLine(t *testing.T, lines <-chan string) string {
	t.Helper()
	select {
	case l, ok := <-lines:
		if !ok {
			t.Fatal("mosquitto_sub ended")
		}
		return l
	case <-time.After(15 * time.Second):
		t.Fatal("no command within 15s")
	}
	return ""
}

func TestCommands_MosquittoDeviceAnswersRESTCommand(t *testing.T) {
	p := Start(t, Options{})
	tok := p.AdminToken()
	d := p.NewDevice(tok, "relay", "double")
	other := p.NewDevice(tok, "other", "double")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// Another device's command topic is refused (mosquitto_sub prints
	// the SUBACK failure and exits).
	host, port, _ := net.SplitHostPort(p.MQTT)
	for _, v := range []string{"mqttv311", "mqttv5"} {
		out, _ := exec.CommandContext(ctx, "mosquitto_sub", "-h", host, "-p", port, "-V", v, "-q", "1", "-u", "JWT", "-P", d.Token,
			"-t", other.ID+"/commands/#", "-C", "1", "-W", "3").CombinedOutput()
		if !strings.Contains(strings.ToLower(string(out)), "denied") && !strings.Contains(strings.ToLower(string(out)), "not authorized") {
			t.Fatalf("%s subscribe to another device's commands: %s", v, out)
		}
	}

	lines, _ := mosquittoSub(t, ctx, p, d, "mqttv311", d.ID+"/commands/#")
	// Subscribed once the state says online on mqtt; send then.
	deadline := time.Now().Add(10 * time.Second)
	for p.Do("GET", "/api/devices/"+d.ID+"/state", tok, nil).Str("result.edge") != "mqtt" {
		if time.Now().After(deadline) {
			t.Fatal("device never online on mqtt")
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the SUBSCRIBE follows the CONNECT
	id := sendCommand(t, p, tok, d.ID, "set_relay", map[string]any{"json_payload": map[string]any{"on": true}})
	line := nextLine(t, lines)
	topic, payload, _ := strings.Cut(line, " ")
	if topic != d.ID+"/commands/set_relay" {
		t.Fatalf("topic %q", topic)
	}
	var m struct {
		ID      int64          `json:"id"`
		Name    string         `json:"name"`
		Payload map[string]any `json:"payload"`
	}
	if err := json.Unmarshal([]byte(payload), &m); err != nil || strconv.FormatInt(m.ID, 10) != id || m.Name != "set_relay" || m.Payload["on"] != true {
		t.Fatalf("command message %s (%v)", payload, err)
	}
	waitStatus(t, p, tok, id, "COMMAND_STATUS_DELIVERED")
	mosquittoPubTopic(t, p, d, "mqttv311", d.ID+"/commands/"+id+"/response", `{"status":"succeeded","result":{"relay":"on"}}`)
	r := waitStatus(t, p, tok, id, "COMMAND_STATUS_SUCCEEDED")
	if got := strings.Join(history(r), ","); got != "QUEUED,SENT,DELIVERED,SUCCEEDED" {
		t.Fatalf("history %s", got)
	}
	if r.Str("result.result") != `{"relay":"on"}` {
		t.Fatalf("result %s", r.Body)
	}
	// Reported attributes over MQTT are served by GetDeviceState.
	mosquittoPubTopic(t, p, d, "mqttv311", d.ID+"/state/reported", `{"firmware":"1.2.3"}`)
	st := p.Do("GET", "/api/devices/"+d.ID+"/state", tok, nil)
	if st.Str("result.reported") != `{"firmware":"1.2.3"}` || st.Str("result.online") != "true" || st.Str("result.last_seen") == "" {
		t.Fatalf("state %s", st.Body)
	}
	metrics := p.Do("GET", "/metrics", "", nil)
	for _, want := range []string{`iot_devices_connected{edge="mqtt"} 1`, `iot_commands_total{status="succeeded"} 1`, "iot_commands_queue_depth"} {
		if !bytes.Contains(metrics.Body, []byte(want)) {
			t.Fatalf("metrics lack %s", want)
		}
	}
}

// mosquittoPubTopic publishes msg to topic once at QoS 1.
func mosquittoPubTopic(t *testing.T, p *Platform, d Device, version, topic, msg string) {
	t.Helper()
	host, port, _ := net.SplitHostPort(p.MQTT)
	if out, err := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-V", version, "-q", "1", "-u", "JWT", "-P", d.Token,
		"-t", topic, "-m", msg).CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v %s", err, out)
	}
}

func TestCommands_AllEdgesOfflineQueueExpiryAndCrash(t *testing.T) {
	p := Start(t, Options{})
	tok := p.AdminToken()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	t.Run("Paho5ResponseTopicAndCorrelationData", func(t *testing.T) {
		d := p.NewDevice(tok, "paho5", "double")
		conn, err := net.Dial("tcp", p.MQTT)
		if err != nil {
			t.Fatal(err)
		}
		got := make(chan *paho.Publish, 4)
		c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil }}})
		if _, err := c.Connect(ctx, &paho.Connect{ClientID: "p5-" + d.ID, CleanStart: true, KeepAlive: 30,
			UsernameFlag: true, Username: "JWT", PasswordFlag: true, Password: []byte(d.Token)}); err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(&paho.Disconnect{})
		if sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "1" + d.ID + "/commands", QoS: 1}}}); err == nil && sa.Reasons[0] < 0x80 {
			t.Fatalf("subscribing to another device's topic granted: %v", sa.Reasons)
		}
		if sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: d.ID + "/commands", QoS: 1}}}); err != nil || sa.Reasons[0] != 1 {
			t.Fatalf("subscribe: %v %v", sa, err)
		}
		id := sendCommand(t, p, tok, d.ID, "reboot", map[string]any{"json_payload": "now"})
		var pub *paho.Publish
		select {
		case pub = <-got:
		case <-time.After(15 * time.Second):
			t.Fatal("no command")
		}
		if pub.Properties == nil || pub.Properties.ResponseTopic == "" || string(pub.Properties.CorrelationData) != id || pub.Topic != d.ID+"/commands" {
			t.Fatalf("publish %+v %+v", pub, pub.Properties)
		}
		// Answer exactly as MQTT 5 says: to the response topic with the
		// correlation data (the topic does not name the command).
		if _, err := c.Publish(ctx, &paho.Publish{Topic: pub.Properties.ResponseTopic, QoS: 1, Payload: []byte(`{"status":"failed","message":"busy"}`),
			Properties: &paho.PublishProperties{CorrelationData: pub.Properties.CorrelationData}}); err != nil {
			t.Fatal(err)
		}
		r := waitStatus(t, p, tok, id, "COMMAND_STATUS_FAILED")
		if got := strings.Join(history(r), ","); got != "QUEUED,SENT,DELIVERED,FAILED" {
			t.Fatalf("history %s", got)
		}
	})

	t.Run("MQTTRedeliveredUntilPUBACK", func(t *testing.T) {
		d := p.NewDevice(tok, "nopuback", "double")
		connect5 := func(manual bool) (*paho.Client, chan *paho.Publish) {
			conn, err := net.Dial("tcp", p.MQTT)
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan *paho.Publish, 4)
			c := paho.NewClient(paho.ClientConfig{Conn: conn, EnableManualAcknowledgment: manual, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil }}})
			if _, err := c.Connect(ctx, &paho.Connect{ClientID: "nopuback-" + d.ID, CleanStart: true, KeepAlive: 30,
				UsernameFlag: true, Username: "JWT", PasswordFlag: true, Password: []byte(d.Token)}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: d.ID + "/commands/#", QoS: 1}}}); err != nil {
				t.Fatal(err)
			}
			return c, got
		}
		recv := func(got chan *paho.Publish) *paho.Publish {
			select {
			case pb := <-got:
				return pb
			case <-time.After(15 * time.Second):
				t.Fatal("no command")
			}
			return nil
		}
		// The first connection never acknowledges (no PUBACK): the command
		// stays sent, and comes again on the next connection.
		c1, got1 := connect5(true)
		id := sendCommand(t, p, tok, d.ID, "switch", map[string]any{"json_payload": "on"})
		if pb := recv(got1); string(pb.Properties.CorrelationData) != id {
			t.Fatalf("first delivery %+v", pb)
		}
		time.Sleep(200 * time.Millisecond)
		if r := p.Do("GET", "/api/commands/"+id, tok, nil); r.Str("result.status") != "COMMAND_STATUS_SENT" {
			t.Fatalf("without PUBACK: %s", r.Body)
		}
		c1.Disconnect(&paho.Disconnect{})
		c2, got2 := connect5(false)
		defer c2.Disconnect(&paho.Disconnect{})
		if pb := recv(got2); string(pb.Properties.CorrelationData) != id {
			t.Fatalf("redelivery %+v", pb)
		}
		r := waitStatus(t, p, tok, id, "COMMAND_STATUS_DELIVERED")
		if got := strings.Join(history(r), ","); got != "QUEUED,SENT,SENT,DELIVERED" {
			t.Fatalf("history %s", got)
		}
	})

	t.Run("WebSocket", func(t *testing.T) {
		d := p.NewDevice(tok, "ws", "double")
		c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"Bearer " + d.Token}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		id := sendCommand(t, p, tok, d.ID, "blink", map[string]any{"json_payload": 3})
		_, msg, err := c.Read(ctx)
		if err != nil || !bytes.Contains(msg, []byte(`"id":`+id)) || !bytes.Contains(msg, []byte(`"type":"command"`)) {
			t.Fatalf("ws command %s %v", msg, err)
		}
		for _, up := range []string{`{"type":"ack","id":` + id + `}`, `{"type":"response","id":` + id + `,"status":"succeeded","result":"blinked"}`,
			`[{"sensor_id":` + d.SensorID + `,"value":1}]`} {
			if err := c.Write(ctx, websocket.MessageText, []byte(up)); err != nil {
				t.Fatal(err)
			}
			if _, ack, err := c.Read(ctx); err != nil || !bytes.Contains(ack, []byte(`"status":200`)) {
				t.Fatalf("ack of %s: %s %v", up, ack, err)
			}
		}
		r := waitStatus(t, p, tok, id, "COMMAND_STATUS_SUCCEEDED")
		if got := strings.Join(history(r), ","); got != "QUEUED,SENT,DELIVERED,SUCCEEDED" || r.Str("result.result") != "blinked" {
			t.Fatalf("history %s %s", got, r.Body)
		}
	})

	t.Run("RotatedKeyReceivesNoCommand", func(t *testing.T) {
		d := p.NewDevice(tok, "rotated", "double")
		c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"Bearer " + d.Token}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		waitOnline(t, p, tok, d.ID, "ws")
		if r := p.Do("POST", "/api/devices/"+d.ID+"/key/rotate", tok, map[string]any{}); r.Status != 200 {
			t.Fatalf("rotate: %d %s", r.Status, r.Body)
		}
		time.Sleep(400 * time.Millisecond) // the auth cache TTL of the test platform is 200ms
		id := sendCommand(t, p, tok, d.ID, "secret", nil)
		if _, msg, err := c.Read(ctx); err == nil {
			t.Fatalf("the old key received %s", msg)
		}
		time.Sleep(200 * time.Millisecond)
		if r := p.Do("GET", "/api/commands/"+id, tok, nil); r.Str("result.status") != "COMMAND_STATUS_QUEUED" {
			t.Fatalf("command after the old key's connection: %s", r.Body)
		}
	})

	t.Run("GoSDKOverGRPCStream", func(t *testing.T) {
		d := p.NewDevice(tok, "grpc", "double")
		dev := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(d.Token))
		s, err := dev.Device.Connect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sensor, _ := strconv.ParseInt(d.SensorID, 10, 64)
		if err := s.Send(&commandv1.ConnectRequest{Message: &commandv1.ConnectRequest_Readings{Readings: &ingestv1.IngestStreamRequest{Sequence: 1,
			Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 1}}}}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := s.Receive(); err != nil || r.GetReadingsAck().GetAccepted() != 1 {
			t.Fatalf("readings ack %v %v", r, err)
		}
		// The device stream and an IngestStream of another device both count
		// as connected on the grpc edge.
		other := p.NewDevice(tok, "grpc-ingest", "double")
		is, err := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(other.Token)).Ingest.IngestStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		otherSensor, _ := strconv.ParseInt(other.SensorID, 10, 64)
		if err := is.Send(&ingestv1.IngestStreamRequest{Sequence: 1, Readings: []*ingestv1.Reading{{SensorId: otherSensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 1}}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := is.Receive(); err != nil {
			t.Fatal(err)
		}
		if m := p.Do("GET", "/metrics", "", nil); !bytes.Contains(m.Body, []byte(`iot_devices_connected{edge="grpc"} 2`)) {
			t.Fatalf("grpc gauge: %s", grepLines(m.Body, "iot_devices_connected"))
		}
		_ = is.CloseRequest()
		user := iot.New(p.URL(), iot.WithGRPC(), iot.WithToken(tok))
		sent, err := user.Command.SendCommand(ctx, &commandv1.SendCommandRequest{DeviceId: mustID(t, d.ID), Name: "calibrate",
			Payload: &commandv1.SendCommandRequest_BinaryPayload{BinaryPayload: []byte{1, 2, 3}}})
		if err != nil {
			t.Fatal(err)
		}
		r, err := s.Receive()
		if err != nil || r.GetCommand().GetId() != sent.GetResult().GetId() || !bytes.Equal(r.GetCommand().GetBinaryPayload(), []byte{1, 2, 3}) {
			t.Fatalf("command %v %v", r, err)
		}
		res, _ := structpb.NewValue(map[string]any{"offset": 0.5})
		for _, m := range []*commandv1.ConnectRequest{
			{Message: &commandv1.ConnectRequest_Ack{Ack: &commandv1.CommandAck{CommandId: sent.GetResult().GetId()}}},
			{Message: &commandv1.ConnectRequest_Response{Response: &commandv1.CommandResponse{CommandId: sent.GetResult().GetId(), Success: true, Result: res}}},
		} {
			if err := s.Send(m); err != nil {
				t.Fatal(err)
			}
		}
		got, err := user.Command.GetCommand(ctx, &commandv1.GetCommandRequest{Id: sent.GetResult().GetId()})
		for err == nil && got.GetResult().GetStatus() != commandv1.CommandStatus_COMMAND_STATUS_SUCCEEDED && ctx.Err() == nil {
			time.Sleep(50 * time.Millisecond)
			got, err = user.Command.GetCommand(ctx, &commandv1.GetCommandRequest{Id: sent.GetResult().GetId()})
		}
		if err != nil || got.GetResult().GetResult().GetStructValue().GetFields()["offset"].GetNumberValue() != 0.5 || len(got.GetResult().GetHistory()) != 4 {
			t.Fatalf("command %v %v", got, err)
		}
		_ = s.CloseRequest()
	})

	t.Run("HTTPLongPoll", func(t *testing.T) {
		d := p.NewDevice(tok, "poll", "double")
		poll := func(wait string) (*http.Response, []byte) {
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.HTTP+"/commands?wait="+wait, nil)
			req.Header.Set("Authorization", "Bearer "+d.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp, b
		}
		if resp, _ := poll("0.2"); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("empty poll: %d", resp.StatusCode)
		}
		// Two long-polls per device at most (IOT_COMMAND_POLL_PER_DEVICE): the
		// third is refused with 429 while they wait.
		held := make(chan int, 2)
		for range 2 {
			go func() { r, _ := poll("3"); held <- r.StatusCode }()
		}
		time.Sleep(time.Second)
		if resp, b := poll("1"); resp.StatusCode != http.StatusTooManyRequests || !bytes.Contains(b, []byte("too many long-polls")) {
			t.Fatalf("third poll: %d %s", resp.StatusCode, b)
		}
		<-held
		<-held
		if resp, b := poll("3600"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("hour-long poll: %d %s", resp.StatusCode, b)
		}
		done := make(chan []byte, 1)
		go func() { _, b := poll("20"); done <- b }()
		time.Sleep(300 * time.Millisecond) // the poll is waiting
		id := sendCommand(t, p, tok, d.ID, "open", nil)
		b := <-done
		if !bytes.Contains(b, []byte(`"id":`+id)) {
			t.Fatalf("poll answer %s", b)
		}
		waitStatus(t, p, tok, id, "COMMAND_STATUS_DELIVERED")
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+p.HTTP+"/commands/"+id+"/response", strings.NewReader(`{"status":"succeeded"}`))
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("response: %v %v", resp, err)
		}
		resp.Body.Close()
		waitStatus(t, p, tok, id, "COMMAND_STATUS_SUCCEEDED")
		// Another device may not answer it.
		o := p.NewDevice(tok, "poll-other", "double")
		req, _ = http.NewRequestWithContext(ctx, "POST", "http://"+p.HTTP+"/commands/"+id+"/response", strings.NewReader(`{"status":"failed"}`))
		req.Header.Set("Authorization", "Bearer "+o.Token)
		if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotFound {
			t.Fatalf("other device's answer: %v %v", resp, err)
		}
	})

	t.Run("Iotctl", func(t *testing.T) {
		d := p.NewDevice(tok, "ctl", "double")
		ctl := newCtl(t, "IOT_API="+p.URL(), "IOT_TOKEN="+tok)
		var sent struct {
			Result struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"result"`
		}
		if err := json.Unmarshal([]byte(ctl.must("", "command", "send", d.ID, "reboot", `{"delay":5}`, "--ttl", "10m")), &sent); err != nil || sent.Result.ID == "" {
			t.Fatalf("iotctl command send: %v %+v", err, sent)
		}
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.HTTP+"/commands?wait=10", nil)
		req.Header.Set("Authorization", "Bearer "+d.Token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !bytes.Contains(b, []byte(`"payload":{"delay":5}`)) {
			t.Fatalf("device got %s", b)
		}
		if out := ctl.must("", "command", "get", sent.Result.ID); !strings.Contains(out, "COMMAND_STATUS_DELIVERED") {
			t.Fatalf("iotctl command get: %s", out)
		}
		if out := ctl.must("", "command", "state", d.ID); !strings.Contains(out, `"last_seen"`) {
			t.Fatalf("iotctl command state: %s", out)
		}
		if _, errOut, err := ctl.run("", "command", "send", d.ID, "x", "{not json"); err == nil || !strings.Contains(errOut, "not JSON") {
			t.Fatalf("bad payload accepted: %v %s", err, errOut)
		}
	})

	t.Run("DesiredAttributesAndWatchedState", func(t *testing.T) {
		d := p.NewDevice(tok, "shadow", "double")
		user := iot.New(p.URL(), iot.WithToken(tok))
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		w, err := user.Command.WatchDeviceStates(wctx, &commandv1.WatchDeviceStatesRequest{DeviceIds: []int64{mustID(t, d.ID)}})
		if err != nil {
			t.Fatal(err)
		}
		states := make(chan *commandv1.DeviceState, 16)
		go func() {
			for w.Receive() {
				states <- w.Msg().GetState()
			}
			close(states)
		}()
		waitState := func(what string, ok func(*commandv1.DeviceState) bool) {
			t.Helper()
			for {
				select {
				case st, more := <-states:
					if !more {
						t.Fatalf("watch ended waiting for %s: %v", what, w.Err())
					}
					if ok(st) {
						return
					}
				case <-time.After(15 * time.Second):
					t.Fatalf("no state with %s", what)
				}
			}
		}
		waitState("the first state (offline)", func(st *commandv1.DeviceState) bool { return !st.GetOnline() })
		// Desired attributes set while offline reach the device as $desired.
		r := p.Do("PUT", "/api/devices/"+d.ID+"/state/desired", tok, map[string]any{"desired": map[string]any{"interval": 10}})
		if r.Status != 200 || r.Str("result.desired_version") != "1" || r.Str("command.name") != "$desired" {
			t.Fatalf("set desired: %d %s", r.Status, r.Body)
		}
		c, _, err := websocket.Dial(ctx, "ws://"+p.WS+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"Bearer " + d.Token}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		waitState("online on ws", func(st *commandv1.DeviceState) bool {
			return st.GetOnline() && st.GetEdge() == "ws" && st.GetOnlineSince() != nil
		})
		_, msg, err := c.Read(ctx)
		if err != nil || !bytes.Contains(msg, []byte(`"name":"$desired"`)) || !bytes.Contains(msg, []byte(`"desired":{"interval":10}`)) || !bytes.Contains(msg, []byte(`"version":1`)) {
			t.Fatalf("desired delivery %s %v", msg, err)
		}
		if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"reported","attributes":{"interval":10,"fw":"2.0"}}`)); err != nil {
			t.Fatal(err)
		}
		if _, ack, err := c.Read(ctx); err != nil || !bytes.Contains(ack, []byte(`"status":200`)) {
			t.Fatalf("reported ack %s %v", ack, err)
		}
		waitState("reported attributes", func(st *commandv1.DeviceState) bool {
			return st.GetReported().GetFields()["fw"].GetStringValue() == "2.0" && st.GetDesired().GetFields()["interval"].GetNumberValue() == 10
		})
		c.Close(websocket.StatusNormalClosure, "")
		waitState("offline again", func(st *commandv1.DeviceState) bool { return !st.GetOnline() && st.GetLastSeen() != nil })
		// Another user cannot watch it.
		p.Do("POST", "/api/users", tok, map[string]any{"username": "eve" + d.ID, "password": "password-eve", "role": "user"})
		eve := iot.New(p.URL(), iot.WithToken(p.SignIn("eve"+d.ID, "password-eve")))
		ew, err := eve.Command.WatchDeviceStates(ctx, &commandv1.WatchDeviceStatesRequest{DeviceIds: []int64{mustID(t, d.ID)}})
		if err == nil {
			for ew.Receive() {
				t.Fatal("another user watched the device")
			}
			err = ew.Err()
		}
		if connect.CodeOf(err) != connect.CodeNotFound {
			t.Fatalf("another user's watch: %v", err)
		}
	})

	t.Run("OfflineQueuedExpiredAndKill9", func(t *testing.T) {
		d := p.NewDevice(tok, "offline", "double")
		expired := sendCommand(t, p, tok, d.ID, "stale", map[string]any{"ttl": "0.3s"})
		first := sendCommand(t, p, tok, d.ID, "first", map[string]any{"json_payload": 1})
		second := sendCommand(t, p, tok, d.ID, "second", map[string]any{"json_payload": 2})
		waitStatus(t, p, tok, expired, "COMMAND_STATUS_EXPIRED")
		if st := p.Do("GET", "/api/devices/"+d.ID+"/state", tok, nil); st.Str("result.online") == "true" {
			t.Fatalf("offline device online: %s", st.Body)
		}
		p.Kill() // the queued commands are durable
		p.Restart()
		tok := p.AdminToken()
		lines, _ := mosquittoSub(t, ctx, p, d, "mqttv5", d.ID+"/commands/#")
		for _, want := range []string{first, second} {
			line := nextLine(t, lines)
			if !strings.Contains(line, `"id":`+want+`,`) {
				t.Fatalf("got %s, want command %s (in order)", line, want)
			}
		}
		select {
		case l := <-lines:
			t.Fatalf("unexpected delivery (the expired command?): %s", l)
		case <-time.After(500 * time.Millisecond):
		}
		r := waitStatus(t, p, tok, first, "COMMAND_STATUS_DELIVERED")
		if got := strings.Join(history(r), ","); got != "QUEUED,SENT,DELIVERED" {
			t.Fatalf("history %s", got)
		}
		if got := strings.Join(history(p.Do("GET", "/api/commands/"+expired, tok, nil)), ","); got != "QUEUED,EXPIRED" {
			t.Fatalf("expired history %s", got)
		}
		l := p.Do("GET", "/api/devices/"+d.ID+"/commands", tok, nil)
		if res, _ := l.JSON["result"].([]any); len(res) != 3 {
			t.Fatalf("list %s", l.Body)
		}
	})
}

// grepLines returns the lines of b containing s.
func grepLines(b []byte, s string) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
