package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"time"
)

// mqttLoop is evLoop for MQTT 3.1.1 devices: each message a QoS 1 PUBLISH
// (same topic, packet id and payload as mqttClient.send), its ack the
// PUBACK, DISCONNECT last. Bytes for an idle device stay in the socket and
// are read as its next PUBACK (a mismatch then), as a blocking read would.
type mqttLoop struct {
	evLoop
	m []mqttDev

	onPartial func(i int) // tests: a read returned part of a PUBACK
}

type mqttDev struct {
	d     device
	topic string
	pid   uint16
	got   int
	ack   [4]byte
}

// newMQTTLoop takes the sockets of the connected MQTT clients (nil: not
// connected) over.
func newMQTTLoop(clients []client) (deviceLoop, error) {
	l := &mqttLoop{m: make([]mqttDev, len(clients))}
	err := l.init(clients, l, "puback", func(i int, c client) (net.Conn, error) {
		m, ok := c.(*mqttClient)
		if !ok {
			return nil, fmt.Errorf("client %d is a %T, not MQTT", i, c)
		}
		l.m[i] = mqttDev{d: m.d, topic: m.topic}
		return m.c, nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (l *mqttLoop) message(b []byte, i, k int, at time.Time) []byte {
	m := &l.m[i]
	m.pid, m.got = uint16(k%65535+1), 0
	return appendPublish(b, m.topic, m.pid, m.d, k, at)
}

func (l *mqttLoop) bye(int) []byte { return []byte{0xE0, 0} }

// read reads what there is of busy device i's PUBACK (until it is whole
// or the socket is empty) and, once whole, records the ack.
func (l *mqttLoop) read(i int) {
	d, m := &l.devs[i], &l.m[i]
	if d.state != devBusy {
		return
	}
	for m.got < len(m.ack) {
		r, err := readSome(d.fd, m.ack[m.got:], m.got > 0)
		if err != nil {
			l.fail(i, fmt.Errorf("puback: %w", err))
			return
		}
		if r == 0 {
			return
		}
		m.got += r
		if m.got < len(m.ack) && l.onPartial != nil {
			l.onPartial(i)
		}
	}
	now := time.Now()
	if d.msgLeft == 0 && (m.ack[0] != 0x40 || binary.BigEndian.Uint16(m.ack[2:]) != m.pid) {
		l.fail(i, fmt.Errorf("puback %x for packet %d", m.ack, m.pid))
		return
	}
	l.acked(i, false, now)
}

// appendPublish appends the QoS 1 PUBLISH of reading k that mqttClient.send
// writes: mqttPacket(0x32, topic, packet id, payload(d, k, at)).
func appendPublish(b []byte, topic string, pid uint16, d device, k int, at time.Time) []byte {
	var pl [96]byte
	p := appendPayload(pl[:0], d, k, at)
	b = appendLength(append(b, 0x32), 2+len(topic)+2+len(p))
	b = binary.BigEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	b = binary.BigEndian.AppendUint16(b, pid)
	return append(b, p...)
}
