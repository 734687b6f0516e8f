package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestCommands_TwoIngestProcessesOverPostgreSQL: Core in one process, two
// ingest processes (Kafka bus, PostgreSQL registry, tokens verified by
// Core's JWKS). Commands sent through Core reach a device on MQTT at the
// first ingest process and one on WebSocket at the second (PostgreSQL
// LISTEN/NOTIFY carries them), their answers reach Core, and Core serves the
// devices' connection state. A function serving only the commands group
// sends commands too.
func TestCommands_TwoIngestProcessesOverPostgreSQL(t *testing.T) {
	dsn, brokers := freshPostgres(t), testenv.KafkaBrokers(t)
	admin, n := "pw-"+randHex(8), randHex(4)
	env := []string{"IOT_POSTGRES_DSN=" + dsn, "IOT_ADMIN_PASSWORD=" + admin, "IOT_KEYS_DIR=" + t.TempDir(), "IOT_LOG_FORMAT=text"}
	serve := func(name, roles string, extra ...string) []string {
		a := freeAddrs(t, 4)
		args := []string{"serve", "--roles=" + roles, "--data-dir", t.TempDir(), "--api-addr", a[0], "--http-addr", a[1], "--ws-addr", a[2], "--mqtt-addr", a[3]}
		startProc(t, name, binary, args, append(append([]string{}, env...), extra...), "http://"+a[0]+"/readyz")
		return a
	}
	coreAddrs := serve("core", "core")
	ingestEnv := []string{"IOT_KAFKA_BROKERS=" + brokers, "IOT_KAFKA_TOPIC=e2e.cmd." + n, "IOT_JWKS_URL=http://" + coreAddrs[0] + "/.well-known/jwks.json"}
	in1 := serve("ingest-1", "ingest", ingestEnv...)
	in2 := serve("ingest-2", "ingest", ingestEnv...)

	core := &Platform{t: t, API: coreAddrs[0], AdminPassword: admin}
	tok := core.AdminToken()
	d1, d2 := core.NewDevice(tok, "mqtt-dev", "double"), core.NewDevice(tok, "ws-dev", "double")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// d1 on MQTT at ingest-1.
	lines, _ := mosquittoSub(t, ctx, &Platform{t: t, MQTT: in1[3]}, d1, "mqttv311", d1.ID+"/commands")
	waitOnline(t, core, tok, d1.ID, "mqtt")
	// d2 on WebSocket at ingest-2.
	c, _, err := websocket.Dial(ctx, "ws://"+in2[2]+"/", &websocket.DialOptions{HTTPHeader: http.Header{"authorization": {"Bearer " + d2.Token}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	waitOnline(t, core, tok, d2.ID, "ws")

	id1 := sendCommand(t, core, tok, d1.ID, "one", map[string]any{"json_payload": 1})
	if line := nextLine(t, lines); !strings.Contains(line, `"id":`+id1+`,`) {
		t.Fatalf("ingest-1 delivered %s", line)
	}
	mosquittoPubTopic(t, &Platform{t: t, MQTT: in1[3]}, d1, "mqttv311", d1.ID+"/commands/"+id1+"/response", "done")
	if r := waitStatus(t, core, tok, id1, "COMMAND_STATUS_SUCCEEDED"); r.Str("result.result") != "done" || r.Str("result.edge") != "mqtt" {
		t.Fatalf("command 1: %s", r.Body)
	}

	// Core waits for the answer given at ingest-2 (wait=10s).
	answered := make(chan Response, 1)
	go func() {
		answered <- core.Do("POST", "/api/devices/"+d2.ID+"/commands", tok, map[string]any{"name": "two", "wait": "10s"})
	}()
	_, msg, err := c.Read(ctx)
	if err != nil || !bytes.Contains(msg, []byte(`"name":"two"`)) {
		t.Fatalf("ingest-2 delivered %s %v", msg, err)
	}
	var id2 string
	if i := bytes.Index(msg, []byte(`"id":`)); i >= 0 {
		id2 = string(msg[i+5 : i+5+bytes.IndexByte(msg[i+5:], ',')])
	}
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"type":"response","id":`+id2+`,"status":"succeeded","result":{"ok":true}}`)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := c.Read(ctx); err != nil || !bytes.Contains(ack, []byte(`"status":200`)) {
		t.Fatalf("ack of the answer: %s %v", ack, err)
	}
	select {
	case r := <-answered:
		if r.Status != 200 || r.Str("result.status") != "COMMAND_STATUS_SUCCEEDED" || r.Str("result.id") != id2 {
			t.Fatalf("SendCommand with wait: %d %s", r.Status, r.Body)
		}
	case <-ctx.Done():
		t.Fatal("SendCommand with wait did not return")
	}

	// A function serving the commands group (iotplatform function --group
	// commands) sends to the same device; Core procedures are not served.
	fn := startFunction(t, "fn-commands", []string{"--group", "commands", "--postgres-dsn", dsn,
		"--jwks-url", "http://" + coreAddrs[0] + "/.well-known/jwks.json"}, nil)
	id3 := sendCommand(t, fn, tok, d2.ID, "three", nil)
	if _, msg, err := c.Read(ctx); err != nil || !bytes.Contains(msg, []byte(`"id":`+id3+`,`)) {
		t.Fatalf("ingest-2 delivered %s %v (want the function's command %s)", msg, err, id3)
	}
	if r := fn.Do("GET", "/api/devices/"+d2.ID, tok, nil); r.Status != http.StatusNotFound || !strings.Contains(r.Str("message"), "not served") {
		t.Fatalf("the commands function served GetDevice: %d %s", r.Status, r.Body)
	}
}

// waitOnline waits until Core says the device is online on edge.
func waitOnline(t *testing.T, p *Platform, tok, device, edge string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		st := p.Do("GET", "/api/devices/"+device+"/state", tok, nil)
		if st.Str("result.online") == "true" && st.Str("result.edge") == edge {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("device %s not online on %s: %s", device, edge, st.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
