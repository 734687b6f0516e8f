package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"

	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
)

// mqttClient is a minimal MQTT 3.1.1 client: CONNECT with username JWT and
// the device key, QoS 1 PUBLISH to the device's topic, PUBACK read back.
type mqttClient struct {
	c     net.Conn
	d     device
	topic string
	buf   []byte
}

func mqttString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func mqttPacket(typ byte, body []byte) []byte {
	return append(appendLength([]byte{typ}, len(body)), body...)
}

// appendLength appends MQTT's variable byte integer l (a remaining length).
func appendLength(b []byte, l int) []byte {
	for {
		d := byte(l % 128)
		l /= 128
		if l > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if l == 0 {
			return b
		}
	}
}

func dialMQTT(addr string, d device) (client, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var v []byte
	v = mqttString(v, "MQTT")
	v = append(v, 4, 0xC2, 0, 120) // 3.1.1; username, password, clean session; keep-alive 120 s
	v = mqttString(v, "fleet-"+strconv.FormatInt(d.id, 10))
	v = mqttString(v, "JWT")
	v = mqttString(v, d.key)
	_ = c.SetDeadline(time.Now().Add(ackTimeout))
	if _, err := c.Write(mqttPacket(0x10, v)); err != nil {
		c.Close()
		return nil, err
	}
	ack := make([]byte, 4)
	if _, err := io.ReadFull(c, ack); err != nil {
		c.Close()
		return nil, fmt.Errorf("connack: %w", err)
	}
	if ack[0] != 0x20 || ack[3] != 0 {
		c.Close()
		return nil, fmt.Errorf("connack %x", ack)
	}
	return &mqttClient{c: c, d: d, topic: strconv.FormatInt(d.id, 10)}, nil
}

func (m *mqttClient) send(k int, at time.Time) (bool, error) {
	pid := uint16(k%65535 + 1)
	body := mqttString(m.buf[:0], m.topic)
	body = binary.BigEndian.AppendUint16(body, pid)
	body = append(body, payload(m.d, k, at)...)
	m.buf = body
	_ = m.c.SetDeadline(time.Now().Add(ackTimeout))
	if _, err := m.c.Write(mqttPacket(0x32, body)); err != nil { // PUBLISH QoS 1
		return false, err
	}
	var ack [4]byte
	if _, err := io.ReadFull(m.c, ack[:]); err != nil {
		return false, fmt.Errorf("puback: %w", err)
	}
	if ack[0] != 0x40 || binary.BigEndian.Uint16(ack[2:]) != pid {
		return false, fmt.Errorf("puback %x for packet %d", ack, pid)
	}
	return true, nil
}

func (m *mqttClient) close() {
	_, _ = m.c.Write([]byte{0xE0, 0}) // DISCONNECT
	m.c.Close()
}

// wsClient is a minimal WebSocket client (RFC 6455): the upgrade with the
// key as bearer token, masked text frames out, the JSON ack frames in
// (pings answered).
type wsClient struct {
	c  net.Conn
	r  *bufio.Reader
	d  device
	wb []byte
}

func dialWS(addr string, d device) (client, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	var key [16]byte
	_, _ = rand.Read(key[:])
	_ = c.SetDeadline(time.Now().Add(ackTimeout))
	req := "GET / HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " +
		base64.StdEncoding.EncodeToString(key[:]) + "\r\nAuthorization: Bearer " + d.key + "\r\n\r\n"
	if _, err := io.WriteString(c, req); err != nil {
		c.Close()
		return nil, err
	}
	r := bufio.NewReaderSize(c, 512)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, fmt.Errorf("upgrade: %s", resp.Status)
	}
	if got, want := resp.Header.Get("Sec-WebSocket-Accept"), wsAccept(key[:]); got != want {
		c.Close()
		return nil, fmt.Errorf("upgrade: Sec-WebSocket-Accept %q, want %q", got, want)
	}
	return &wsClient{c: c, r: r, d: d}, nil
}

// wsAccept is the Sec-WebSocket-Accept that answers key (RFC 6455 section 4.2.2).
func wsAccept(key []byte) string {
	h := sha1.Sum([]byte(base64.StdEncoding.EncodeToString(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

func (w *wsClient) frame(op byte, p []byte) error {
	w.wb = appendClientFrame(w.wb[:0], op, p)
	_, err := w.c.Write(w.wb)
	return err
}

// appendClientFrame appends p as one masked frame of opcode op (p under
// 64 KiB).
func appendClientFrame(b []byte, op byte, p []byte) []byte {
	b = append(b, 0x80|op)
	if len(p) < 126 {
		b = append(b, 0x80|byte(len(p)))
	} else {
		b = binary.BigEndian.AppendUint16(append(b, 0x80|126), uint16(len(p)))
	}
	mask := mrand.Uint32()
	b = binary.BigEndian.AppendUint32(b, mask)
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], mask)
	for i, c := range p {
		b = append(b, c^m[i&3])
	}
	return b
}

func (w *wsClient) send(k int, at time.Time) (bool, error) {
	_ = w.c.SetDeadline(time.Now().Add(ackTimeout))
	if err := w.frame(0x1, payload(w.d, k, at)); err != nil {
		return false, err
	}
	for {
		var h [2]byte
		if _, err := io.ReadFull(w.r, h[:]); err != nil {
			return false, fmt.Errorf("ack: %w", err)
		}
		n := int(h[1] & 0x7f)
		switch n {
		case 126:
			var e [2]byte
			if _, err := io.ReadFull(w.r, e[:]); err != nil {
				return false, err
			}
			n = int(binary.BigEndian.Uint16(e[:]))
		case 127:
			return false, errors.New("ack frame too large")
		}
		p := make([]byte, n)
		if _, err := io.ReadFull(w.r, p); err != nil {
			return false, err
		}
		switch h[0] & 0x0f {
		case 0x9: // ping
			if err := w.frame(0xA, p); err != nil {
				return false, err
			}
			continue
		case 0x8:
			return false, fmt.Errorf("closed by server: %q", p)
		case 0x1:
			return bytes.Contains(p, []byte(`"status":200`)), nil
		}
	}
}

func (w *wsClient) close() {
	_ = w.frame(0x8, []byte{0x03, 0xe8})
	w.c.Close()
}

// grpcClient holds one IngestStream (gRPC protocol, HTTP/2 cleartext) on
// its own connection.
type grpcClient struct {
	s      *connect.BidiStreamForClientSimple[ingestv1.IngestStreamRequest, ingestv1.IngestStreamResponse]
	tr     *http.Transport
	d      device
	cancel context.CancelFunc
}

func dialGRPC(api string, d device) (client, error) {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, MaxIdleConnsPerHost: 1,
		HTTP2: &http.HTTP2Config{MaxReceiveBufferPerConnection: 64 << 10, MaxReceiveBufferPerStream: 64 << 10}}
	ic := ingestv1connect.NewIngestServiceClient(&http.Client{Transport: tr}, api, connect.WithGRPC())
	ctx, cancel := context.WithCancel(context.Background())
	ctx, call := connect.NewClientContext(ctx)
	call.RequestHeader().Set("Authorization", "Bearer "+d.key)
	s, err := ic.IngestStream(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	g := &grpcClient{s: s, tr: tr, d: d, cancel: cancel}
	// The stream opens with its first message; send nothing until the
	// load starts, but open the connection now.
	if err := s.Send(nil); err != nil {
		cancel()
		return nil, fmt.Errorf("open stream: %w", err)
	}
	return g, nil
}

func (g *grpcClient) send(k int, at time.Time) (bool, error) {
	req := &ingestv1.IngestStreamRequest{Sequence: uint64(k), Readings: []*ingestv1.Reading{{
		SensorId: g.d.sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(k) + 0.5}}}}
	req.Readings[0].Timestamp = timestamppb.New(at)
	if err := g.s.Send(req); err != nil {
		return false, err
	}
	res, err := g.s.Receive()
	if err != nil {
		return false, err
	}
	if res.Sequence != uint64(k) {
		return false, fmt.Errorf("ack for %d, want %d", res.Sequence, k)
	}
	return len(res.Errors) == 0 && res.Accepted == 1, nil
}

func (g *grpcClient) close() {
	_ = g.s.CloseRequest()
	_ = g.s.CloseResponse()
	g.cancel()
	g.tr.CloseIdleConnections()
}
