package main

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"time"
)

// wsLoop is evLoop for WebSocket devices (upgraded by dialWS): each
// message a masked text frame with the reading's JSON (wsClient.send's),
// its ack the server's next text frame, whose "index" must count the
// device's messages and whose "status" 200 means taken (otherwise
// refused). Pings are answered at once with a masked pong carrying their
// payload, busy or idle; a close frame, any other frame or a second ack
// fails the device. A close frame (1000) is its goodbye.
type wsLoop struct {
	evLoop
	ws  []wsDev
	buf []byte // scratch for reads
	ctl []byte // scratch: a control frame
	// reading: a read is under way (a send from inside it must not start
	// another on the same scratch buffer; the first reads on to EAGAIN).
	reading bool

	pongs int // pings answered (tests)
}

type wsDev struct {
	d  device
	in []byte // the start of a frame not read whole yet
}

// maxServerFrame bounds a frame from the server (acks are about 40 bytes,
// pings at most 125).
const maxServerFrame = 4096

// newWSLoop takes the sockets of the connected WebSocket clients (nil:
// not connected) over, with any bytes read past the upgrade's response.
func newWSLoop(clients []client) (deviceLoop, error) {
	l := &wsLoop{ws: make([]wsDev, len(clients)), buf: make([]byte, 2*maxServerFrame)}
	err := l.init(clients, l, "ack", func(i int, c client) (net.Conn, error) {
		w, ok := c.(*wsClient)
		if !ok {
			return nil, fmt.Errorf("client %d is a %T, not WebSocket", i, c)
		}
		l.ws[i].d = w.d
		if n := w.r.Buffered(); n > 0 {
			b, _ := w.r.Peek(n)
			l.ws[i].in = append([]byte(nil), b...)
		}
		return w.c, nil
	})
	if err != nil {
		return nil, err
	}
	return l, nil
}

func (l *wsLoop) message(b []byte, i, k int, at time.Time) []byte {
	var pl [96]byte
	return appendClientFrame(b, 0x1, appendPayload(pl[:0], l.ws[i].d, k, at))
}

func (l *wsLoop) bye(int) []byte {
	l.ctl = appendClientFrame(l.ctl[:0], 0x8, []byte{0x03, 0xe8})
	return l.ctl
}

// read reads device i's socket until it is empty and handles every whole
// frame in it.
func (l *wsLoop) read(i int) {
	if l.reading {
		return
	}
	l.reading = true
	defer func() { l.reading = false }()
	d, w := &l.devs[i], &l.ws[i]
	for {
		b := append(l.buf[:0], w.in...)
		r, err := readSome(d.fd, b[len(b):cap(b)], len(w.in) > 0)
		switch {
		case err != nil:
			l.fail(i, fmt.Errorf("ack: %w", err))
			return
		case r == 0:
			if len(w.in) > 0 { // whole frames may have come with the upgrade
				l.frames(i, w.in, time.Now())
			}
			return
		}
		if !l.frames(i, b[:len(b)+r], time.Now()) {
			return
		}
	}
}

// frames handles the whole frames in b, read at now, and keeps the rest
// in the device's in; false: the device failed.
func (l *wsLoop) frames(i int, b []byte, now time.Time) bool {
	w := &l.ws[i]
	for {
		n, op, p, err := serverFrame(b)
		if err != nil {
			l.fail(i, err)
			return false
		}
		if n == 0 {
			w.in = append(w.in[:0], b...)
			return true
		}
		b = b[n:]
		switch op {
		case 0x9: // ping
			l.pongs++
			l.ctl = appendClientFrame(l.ctl[:0], 0xA, p)
			if !l.write(i, l.ctl, false) {
				return false
			}
		case 0xA: // an unsolicited pong: nothing to answer
		case 0x8:
			l.fail(i, fmt.Errorf("closed by server: %q", p))
			return false
		case 0x1:
			if !l.ackFrame(i, p, now) {
				return false
			}
		default:
			l.fail(i, fmt.Errorf("ack: frame with opcode %d", op))
			return false
		}
	}
}

// ackFrame records text frame p as the ack of device i's message in
// flight; false: the device failed.
func (l *wsLoop) ackFrame(i int, p []byte, now time.Time) bool {
	d := &l.devs[i]
	if d.state != devBusy {
		l.fail(i, fmt.Errorf("ack %q with no message in flight", p))
		return false
	}
	if want := d.k - 1; ackIndex(p) != want {
		l.fail(i, fmt.Errorf("ack %q for message %d", p, want))
		return false
	}
	l.acked(i, !bytes.Contains(p, []byte(`"status":200`)), now)
	return l.devs[i].state != devClosed
}

// ackIndex is the "index" of an ack's JSON (-1: none).
func ackIndex(p []byte) int {
	const key = `{"index":`
	if !bytes.HasPrefix(p, []byte(key)) {
		return -1
	}
	p = p[len(key):]
	e := bytes.IndexByte(p, ',')
	if e < 0 {
		return -1
	}
	n, err := strconv.Atoi(string(p[:e]))
	if err != nil {
		return -1
	}
	return n
}

// serverFrame parses the frame at b's start: its length n (0: not whole
// yet), opcode and payload. A server frame is unmasked, final and (here)
// at most maxServerFrame bytes.
func serverFrame(b []byte) (n int, op byte, p []byte, err error) {
	if len(b) < 2 {
		return 0, 0, nil, nil
	}
	if b[0]&0x80 == 0 || b[0]&0x70 != 0 || b[1]&0x80 != 0 {
		return 0, 0, nil, fmt.Errorf("ack: frame header %x (fragmented, extension bits or masked)", b[:2])
	}
	size, hdr := int(b[1]&0x7f), 2
	switch size {
	case 126:
		if len(b) < 4 {
			return 0, 0, nil, nil
		}
		size, hdr = int(binary.BigEndian.Uint16(b[2:])), 4
	case 127:
		size = maxServerFrame + 1
	}
	if size > maxServerFrame {
		return 0, 0, nil, fmt.Errorf("ack: frame over %d bytes", maxServerFrame)
	}
	if len(b) < hdr+size {
		return 0, 0, nil, nil
	}
	return hdr + size, b[0] & 0x0f, b[hdr : hdr+size], nil
}
