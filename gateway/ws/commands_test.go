package ws_test

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	gwws "github.com/iotplatform/iotplatform/gateway/ws"
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

// TestWS_IdleConnectionsHoldNoCommandGoroutine: with commands enabled, 50
// idle connections hold no more goroutines than without (a writer
// goroutine each before), and a command still arrives.
func TestWS_IdleConnectionsHoldNoCommandGoroutine(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	cmds := commandtest.New(t, e.Log, sqliteRegistry(t), ingesttest.DeviceA)
	tok := e.DeviceToken(t, ingesttest.DeviceA)
	const n = 50
	// connectAll opens n connections to a new gateway, each used once (its
	// session attached, in order), and returns them with the goroutines
	// they added.
	connectAll := func(withCommands bool) ([]*websocket.Conn, int) {
		g := gwws.New(e.Log, e.Verifier, e.Service, gwws.Config{})
		if withCommands {
			g.EnableCommands(cmds.Service)
		}
		srv := httptest.NewServer(g)
		t.Cleanup(srv.Close)
		url := "ws" + strings.TrimPrefix(srv.URL, "http")
		before := testenv.SettledGoroutines()
		conns := make([]*websocket.Conn, n)
		for i := range conns {
			c, _, err := websocket.Dial(context.Background(), url+"?access_token="+tok, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.CloseNow() })
			if a := roundTrip(t, c, websocket.MessageText, []byte(`{"sensor_id":"11","value":"1"}`)); a.Status != 200 {
				t.Fatalf("ack %+v", a)
			}
			conns[i] = c
		}
		return conns, testenv.SettledGoroutines() - before
	}
	plain, without := connectAll(false)
	for _, c := range plain {
		c.CloseNow()
	}
	conns, with := connectAll(true)
	if with-without >= n/5 {
		t.Fatalf("%d idle connections: %d goroutines with commands, %d without", n, with, without)
	}
	id := cmds.Send(t, "reboot")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, b, err := conns[n-1].Read(ctx) // the newest connection
	if err != nil {
		t.Fatal(err)
	}
	var m command.Message
	if err := json.Unmarshal(b, &m); err != nil || m.Type != "command" || m.ID != id {
		t.Fatalf("newest connection got %s (%v), want command %d", b, err, id)
	}
}
