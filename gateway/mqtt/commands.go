package mqtt

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/services/command"
)

// Commands is what the gateway needs of the command service
// (command.Service): sessions for connected devices, and the device's
// acknowledgements, answers and reported attributes.
//
// Topics of device <id> (docs/COMMANDS.md):
//   - subscribe <id>/commands or <id>/commands/# (or /+): commands arrive as
//     JSON (command.Message) at QoS 1 on <id>/commands, or on
//     <id>/commands/<name> for a wildcard subscription; the PUBACK marks them
//     delivered, and commands without PUBACK are sent again on reconnect;
//   - publish the answer to <id>/commands/<command id>/response (any MQTT
//     version), or (MQTT 5) to the response topic of the command,
//     <id>/commands/response, with its correlation data;
//   - publish reported attributes (a JSON object) to <id>/state/reported.
//
// Every other subscription is refused (SUBACK 0x80 / reason 0x87).
type Commands = command.Edge

// EnableCommands lets devices subscribe to their command topic and answer
// commands; call it before Serve.
func (g *Gateway) EnableCommands(c Commands) { g.cmds = c }

// cmdSession is the command side of one MQTT client.
type cmdSession struct {
	sess *command.Session
	// qos is the QoS granted to the command subscription; wildcard says
	// commands go to <id>/commands/<name>.
	mu       sync.Mutex
	qos      byte
	wildcard bool
	// pending maps packet ids of command publishes to command ids.
	pending map[uint16]int64
}

func (s *session) commandTopic() string { return s.topic + "/commands" }

// commandACL allows the device's own command subscriptions and answer
// publishes.
func (g *Gateway) commandACL(s *session, topic string, write bool) bool {
	if g.cmds == nil || s == nil {
		return false
	}
	base := s.commandTopic()
	if !write {
		return topic == base || topic == base+"/#" || topic == base+"/+"
	}
	if topic == s.topic+"/state/reported" || topic == base+"/response" {
		return true
	}
	rest, ok := strings.CutPrefix(topic, base+"/")
	if !ok {
		return false
	}
	id, suffix, ok := strings.Cut(rest, "/")
	if _, err := strconv.ParseInt(id, 10, 64); err != nil || !ok {
		return false
	}
	return suffix == "response"
}

// attachCommands opens the device's command session (not ready until it
// subscribes). The device's dispatcher writes its commands (deliverer): a
// connection has no goroutine waiting for commands.
func (g *Gateway) attachCommands(cl *mochi.Client, s *session) {
	if g.cmds == nil {
		return
	}
	cs := &cmdSession{pending: map[uint16]int64{}}
	cs.sess = g.cmds.AttachFunc(s.device, command.EdgeMQTT, false, g.deliverer(cl, s, cs))
	g.cmdSessions.Store(cl, cs)
}

func (g *Gateway) detachCommands(cl *mochi.Client) {
	if v, ok := g.cmdSessions.LoadAndDelete(cl); ok {
		v.(*cmdSession).sess.Close()
	}
}

// OnSessionEstablished implements mochi.Hook: the device is connected.
func (g *Gateway) OnSessionEstablished(cl *mochi.Client, _ packets.Packet) {
	if s := g.session(cl); s != nil {
		g.attachCommands(cl, s)
	}
}

// OnSubscribed implements mochi.Hook: a granted command subscription makes
// the session receive commands.
func (g *Gateway) OnSubscribed(cl *mochi.Client, pk packets.Packet, codes []byte) {
	v, ok := g.cmdSessions.Load(cl)
	if !ok {
		return
	}
	cs := v.(*cmdSession)
	granted := false
	for i, f := range pk.Filters {
		if i >= len(codes) || codes[i] >= packets.ErrUnspecifiedError.Code {
			continue
		}
		granted = true
		cs.mu.Lock()
		cs.qos = codes[i]
		cs.wildcard = strings.HasSuffix(f.Filter, "#") || strings.HasSuffix(f.Filter, "+")
		cs.mu.Unlock()
	}
	if granted {
		cs.sess.Ready()
	}
}

// OnQosComplete implements mochi.Hook: the PUBACK of a command.
func (g *Gateway) OnQosComplete(cl *mochi.Client, pk packets.Packet) {
	v, ok := g.cmdSessions.Load(cl)
	if !ok {
		return
	}
	cs := v.(*cmdSession)
	cs.mu.Lock()
	id, ok := cs.pending[pk.PacketID]
	delete(cs.pending, pk.PacketID)
	cs.mu.Unlock()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.cmds.Ack(ctx, cs.sess.Device, id, "PUBACK on mqtt"); err != nil {
		g.log.Warn("mqtt command ack not recorded", "device_id", cs.sess.Device, "command_id", id, "err", err)
	}
}

// deliverer writes commands to the client: it re-checks the credentials
// first (a rotated or revoked key receives no command and is
// disconnected), and a failed write stops the client (commands without
// PUBACK are sent again on reconnect).
func (g *Gateway) deliverer(cl *mochi.Client, s *session, cs *cmdSession) command.DeliverFunc {
	return func(sess *command.Session, c registry.Command) bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.recheck(ctx); err != nil {
			g.log.Info("mqtt credentials no longer valid", "device_id", s.device, "err", err)
			_ = g.bounded(cl, func() error { return g.srv.DisconnectClient(cl, packets.ErrNotAuthorized) })
			return false
		}
		if !g.cmds.Sent(ctx, sess, c) {
			return true
		}
		return g.writeCommand(ctx, cl, s, cs, c)
	}
}

// commandWriteTimeout bounds writing one command: mochi writes straight to
// the socket under the client's lock, with no deadline, so a client that
// does not read would otherwise hold its dispatcher, and the workers acking
// its publishes, for as long as it stays connected. The client is stopped
// instead.
const commandWriteTimeout = 5 * time.Second

// errCommandNotRead stops a client that did not read a command within
// commandWriteTimeout.
var errCommandNotRead = errors.New("mqtt client does not read its commands")

// bounded runs write, a write to cl, stopping cl if it takes longer than
// commandWriteTimeout (which makes the write fail).
func (g *Gateway) bounded(cl *mochi.Client, write func() error) error {
	stuck := time.AfterFunc(g.cmdWriteTimeout, func() { cl.Stop(errCommandNotRead) })
	defer stuck.Stop()
	return write()
}

// writeCommand writes c to the client; false: the connection failed (the
// client is stopped). A command the client cannot take (larger than its
// maximum packet size, no packet id free) is skipped with a log line.
func (g *Gateway) writeCommand(ctx context.Context, cl *mochi.Client, s *session, cs *cmdSession, c registry.Command) bool {
	cs.mu.Lock()
	qos, wildcard := cs.qos, cs.wildcard
	cs.mu.Unlock()
	topic := s.commandTopic()
	if wildcard {
		topic += "/" + c.Name
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos}, TopicName: topic, Payload: command.Encode(c)}
	if s.v5 {
		pk.Properties.ResponseTopic = s.commandTopic() + "/response"
		pk.Properties.CorrelationData = []byte(strconv.FormatInt(c.ID, 10))
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = 1, true
		pk.Properties.ContentType = "application/json"
	}
	if qos > 0 {
		id, err := cl.NextPacketID()
		if err != nil {
			g.log.Warn("mqtt command not sent: no packet id", "device_id", s.device, "command_id", c.ID)
			return true
		}
		pk.PacketID = uint16(id)
		cs.mu.Lock()
		cs.pending[pk.PacketID] = c.ID
		cs.mu.Unlock()
		pk.Created = time.Now().Unix()
		cl.State.Inflight.Set(pk) // mochi hands the PUBACK to OnQosComplete
		cl.State.Inflight.DecreaseSendQuota()
	}
	err := g.bounded(cl, func() error { return cl.WritePacket(pk) })
	if errors.Is(err, packets.ErrPacketTooLarge) {
		g.log.Info("mqtt command larger than the client takes", "device_id", s.device, "command_id", c.ID)
		return true
	}
	if err != nil {
		g.log.Info("mqtt command not written; sent again on reconnect", "device_id", s.device, "command_id", c.ID, "err", err)
		cl.Stop(err)
		return false
	}
	if qos == 0 { // no PUBACK will come: written is all we will know
		if err := g.cmds.Ack(ctx, s.device, c.ID, "written on mqtt at QoS 0"); err != nil {
			g.log.Warn("mqtt command delivery not recorded", "device_id", s.device, "command_id", c.ID, "err", err)
		}
	}
	return true
}

// commandPublish handles a publish to a command or state topic: an answer
// or reported attributes, acknowledged in order with the client's readings.
func (g *Gateway) commandPublish(cl *mochi.Client, s *session, pk packets.Packet) (packets.Packet, error) {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	g.cmds.Seen(s.device)
	var err error
	switch topic := pk.TopicName; {
	case topic == s.topic+"/state/reported":
		err = g.cmds.Report(ctx, s.device, pk.Payload)
	default:
		idText := string(pk.Properties.CorrelationData)
		if rest, ok := strings.CutPrefix(topic, s.commandTopic()+"/"); ok && rest != "response" {
			idText, _, _ = strings.Cut(rest, "/")
		}
		id, perr := strconv.ParseInt(idText, 10, 64)
		if perr != nil {
			err = command.ErrUnknownCommand
			break
		}
		a := command.ParseAnswer(pk.Payload)
		err = g.cmds.Respond(ctx, s.device, id, a.Success, a.Result, a.Message)
	}
	code := packets.CodeSuccess
	j := job{qos: pk.FixedHeader.Qos, pid: pk.PacketID, code: &code}
	if err != nil {
		g.log.Info("mqtt command answer refused", "device_id", s.device, "topic", pk.TopicName, "err", err)
		if s.v5 {
			code = packets.ErrImplementationSpecificError
			if !command.IsDeviceError(err) {
				code = packets.ErrUnspecifiedError
			}
			j.reason = err
		}
	}
	g.enqueue(s, j)
	return pk, packets.ErrRejectPacket
}
