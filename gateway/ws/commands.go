package ws

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/coder/websocket"

	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/command"
	"github.com/iotplatform/iotplatform/services/ingest"
)

// Commands is what the gateway needs of the command service
// (command.Service). With it, commands are pushed down every connection as
// text frames (command.Message, "type": "command"), and the device sends up,
// each answered with an ack frame like readings:
//
//	{"type": "ack", "id": 42}                                   delivered
//	{"type": "response", "id": 42, "status": "succeeded", "result": {...}}
//	{"type": "reported", "attributes": {"firmware": "1.2"}}
type Commands = command.Edge

// EnableCommands turns command delivery on.
func (g *Gateway) EnableCommands(c Commands) { g.cmds = c }

// frames is how commands reach a connection: coder/websocket's
// (coderFrames) or the epoll edge's (wconn).
type frames interface {
	// writeText writes one text frame, bounded by the write timeout.
	writeText(ctx context.Context, b []byte) error
	// abort drops the connection (a command not written).
	abort()
	// revoked closes the connection with 1008: the credentials are no
	// longer valid.
	revoked()
}

type coderFrames struct {
	c       *websocket.Conn
	timeout time.Duration
}

func (f coderFrames) writeText(ctx context.Context, b []byte) error {
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	return f.c.Write(ctx, websocket.MessageText, b)
}

func (f coderFrames) abort() { f.c.CloseNow() }

func (f coderFrames) revoked() {
	f.c.Close(websocket.StatusPolicyViolation, "credentials no longer valid")
}

// serveCommands attaches the connection's session until the returned stop
// is called. The device's dispatcher writes each command (deliverer): an
// idle connection has no goroutine waiting for commands.
func (g *Gateway) serveCommands(ctx context.Context, c frames, p authn.Principal, recheck func(context.Context) (int, error)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	sess := g.cmds.AttachFunc(p.ID, command.EdgeWS, true, g.deliverer(ctx, c, recheck))
	return func() {
		cancel() // a write under way ends now: Close need not wait for it
		sess.Close()
	}
}

// deliverer writes commands to c. recheck re-verifies the credentials
// before each command (a rotated or revoked key receives none); a write
// takes at most the write timeout, and a failed one closes the connection
// (the command is sent again on the next).
func (g *Gateway) deliverer(ctx context.Context, c frames, recheck func(context.Context) (int, error)) command.DeliverFunc {
	return func(sess *command.Session, cmd registry.Command) bool {
		if _, err := recheck(ctx); err != nil {
			c.revoked()
			return false
		}
		if !g.cmds.Sent(ctx, sess, cmd) {
			return true
		}
		if err := c.writeText(ctx, command.Encode(cmd)); err != nil {
			c.abort()
			return false
		}
		return true
	}
}

// deviceMessage is a command-side message from the device.
type deviceMessage struct {
	Type       string          `json:"type"`
	ID         int64           `json:"id"`
	Attributes json.RawMessage `json:"attributes"`
}

// commandMessage handles a text message that is an ack, a response or
// reported attributes (ok false: it is readings).
func (g *Gateway) commandMessage(ctx context.Context, p authn.Principal, i int, typ websocket.MessageType, msg []byte) (Ack, bool) {
	g.cmds.Seen(p.ID)
	t := bytes.TrimLeft(msg, " \t\r\n")
	if typ != websocket.MessageText || len(t) == 0 || t[0] != '{' || !bytes.Contains(t, []byte(`"type"`)) {
		return Ack{}, false
	}
	var m deviceMessage
	if json.Unmarshal(t, &m) != nil {
		return Ack{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var err error
	switch m.Type {
	case "ack":
		err = g.cmds.Ack(ctx, p.ID, m.ID, "acknowledged on ws")
	case "response":
		a := command.ParseAnswer(t)
		if a.Result == nil || a.Success && bytes.Equal(a.Result, t) { // the whole message is no result
			var r struct {
				Result json.RawMessage `json:"result"`
			}
			_ = json.Unmarshal(t, &r)
			a.Result = nil
			if len(r.Result) > 0 && string(r.Result) != "null" {
				a.Result = r.Result
			}
		}
		err = g.cmds.Respond(ctx, p.ID, m.ID, a.Success, a.Result, a.Message)
	case "reported":
		err = g.cmds.Report(ctx, p.ID, m.Attributes)
	default:
		return Ack{}, false
	}
	ack := Ack{Index: i, Status: http.StatusOK}
	if err != nil {
		ack.Status, ack.Code, ack.Message = http.StatusBadRequest, "invalid_argument", err.Error()
		if !command.IsDeviceError(err) {
			g.log.Warn("ws command message failed", "device_id", p.ID, "err", err)
			ack.Status, ack.Code, ack.Message = http.StatusServiceUnavailable, apierror.CodeOfStatus(http.StatusServiceUnavailable), "the platform cannot record this right now; send it again later"
		}
		ack.Errors = []ingest.ItemError{{Index: -1, Code: ack.Code, Message: ack.Message}}
	}
	return ack, true
}
