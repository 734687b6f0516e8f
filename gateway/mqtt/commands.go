package mqtt

import (
	"context"
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
	// s is the client's session; sending says its sender runs (started
	// by the first granted subscription: a device that never subscribes
	// has no goroutine waiting for commands).
	s       *session
	sending bool
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
// subscribes).
func (g *Gateway) attachCommands(cl *mochi.Client, s *session) {
	if g.cmds == nil {
		return
	}
	cs := &cmdSession{sess: g.cmds.Attach(s.device, command.EdgeMQTT, false), pending: map[uint16]int64{}, s: s}
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
		cs.mu.Lock()
		start := !cs.sending
		cs.sending = true
		cs.mu.Unlock()
		if start {
			go g.sendCommands(cl, cs.s, cs)
		}
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

// sendCommands writes the session's commands to the client.
func (g *Gateway) sendCommands(cl *mochi.Client, s *session, cs *cmdSession) {
	for {
		select {
		case <-cs.sess.Done():
			return
		case c := <-cs.sess.Commands():
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := s.recheck(ctx); err != nil { // a rotated or revoked key receives no command
				cancel()
				g.log.Info("mqtt credentials no longer valid", "device_id", s.device, "err", err)
				_ = g.srv.DisconnectClient(cl, packets.ErrNotAuthorized)
				return
			}
			if g.cmds.Sent(ctx, cs.sess, c) {
				g.writeCommand(ctx, cl, s, cs, c)
			}
			cancel()
		}
	}
}

func (g *Gateway) writeCommand(ctx context.Context, cl *mochi.Client, s *session, cs *cmdSession, c registry.Command) {
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
			return
		}
		pk.PacketID = uint16(id)
		cs.mu.Lock()
		cs.pending[pk.PacketID] = c.ID
		cs.mu.Unlock()
		pk.Created = time.Now().Unix()
		cl.State.Inflight.Set(pk) // mochi hands the PUBACK to OnQosComplete
		cl.State.Inflight.DecreaseSendQuota()
	}
	if err := cl.WritePacket(pk); err != nil {
		g.log.Info("mqtt command not written; sent again on reconnect", "device_id", s.device, "command_id", c.ID, "err", err)
		return
	}
	if qos == 0 { // no PUBACK will come: written is all we will know
		if err := g.cmds.Ack(ctx, s.device, c.ID, "written on mqtt at QoS 0"); err != nil {
			g.log.Warn("mqtt command delivery not recorded", "device_id", s.device, "command_id", c.ID, "err", err)
		}
	}
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
