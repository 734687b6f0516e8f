package command

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	commandv1 "github.com/iotplatform/iotplatform/gen/iot/command/v1"
	"github.com/iotplatform/iotplatform/gen/iot/command/v1/commandv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// deviceServer serves h over HTTP/2 without TLS, every call authenticated
// as the fixture's device.
func (f *fixture) deviceServer(t *testing.T, h *DeviceHandler) string {
	t.Helper()
	path, handler := h.Handler()
	mux := http.NewServeMux()
	dev := authn.Principal{Kind: authn.KindDevice, ID: f.device.ID}
	mux.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler.ServeHTTP(w, r.WithContext(authn.WithPrincipal(r.Context(), dev)))
	}))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// deviceClient is a gRPC DeviceService client over HTTP/2 without TLS;
// window bounds what the server may send on a stream before the client
// reads it (0: the default).
func deviceClient(t *testing.T, url string, window int) commandv1connect.DeviceServiceClient {
	p := new(http.Protocols)
	p.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: p, HTTP2: &http.HTTP2Config{MaxReceiveBufferPerStream: window}}
	t.Cleanup(tr.CloseIdleConnections)
	return commandv1connect.NewDeviceServiceClient(&http.Client{Transport: tr}, url, connect.WithGRPC())
}

type deviceStream = connect.BidiStreamForClientSimple[commandv1.ConnectRequest, commandv1.ConnectResponse]

// open opens a Connect stream and sends its headers.
func open(t *testing.T, ctx context.Context, c commandv1connect.DeviceServiceClient) *deviceStream {
	t.Helper()
	s, err := c.Connect(ctx)
	if err == nil {
		err = s.Send(nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.CloseRequest() })
	return s
}

// roundTrip sends an ack of an unknown command and waits for its error
// answer: the stream's handler runs (its session is attached).
func roundTrip(t *testing.T, s *deviceStream) {
	t.Helper()
	if err := s.Send(&commandv1.ConnectRequest{Message: &commandv1.ConnectRequest_Ack{Ack: &commandv1.CommandAck{CommandId: 1 << 40}}}); err != nil {
		t.Fatal(err)
	}
	res, err := s.Receive()
	if err != nil || res.GetError() == nil {
		t.Fatalf("answer to an unknown ack: %v, %v", res, err)
	}
}

// connectGoroutines counts the goroutines running DeviceHandler.Connect or
// started by it.
func connectGoroutines() int {
	buf := make([]byte, 1<<22)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "command.(*DeviceHandler).Connect") {
			n++
		}
	}
	return n
}

func TestConnect_IdleStreamsHoldNoCommandGoroutine(t *testing.T) {
	f := newFixture(t, Config{})
	url := f.deviceServer(t, NewDeviceHandler(f.svc, nil))
	client := deviceClient(t, url, 0)
	const n = 50
	streams := make([]*deviceStream, n)
	for i := range streams {
		streams[i] = open(t, f.ctx, client)
		roundTrip(t, streams[i])
	}
	testenv.SettledGoroutines()
	if got := connectGoroutines(); got > n {
		t.Fatalf("%d idle streams: %d goroutines in or from Connect, want one each (its handler)", n, got)
	}
	// A command still arrives, on the newest stream.
	id := f.send(t, "reboot")
	res, err := streams[n-1].Receive()
	if err != nil || res.GetCommand().GetId() != id {
		t.Fatalf("newest stream got %v, %v; want command %d", res, err, id)
	}
}

// TestConnect_DeviceThatDoesNotReadIsCutOff: a device keeping its stream
// open without reading it holds a command write for sendTimeout at most;
// its stream is then reset, and the command goes to its next connection.
func TestConnect_DeviceThatDoesNotReadIsCutOff(t *testing.T) {
	f := newFixture(t, Config{})
	h := NewDeviceHandler(f.svc, nil)
	h.sendTimeout = 200 * time.Millisecond
	url := f.deviceServer(t, h)
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	open(t, ctx, deviceClient(t, url, 1)) // a window of 1 byte, never read
	connected := func() float64 { return gauge(t, f.metrics, "iot_devices_connected", EdgeGRPC) }
	waitFor(t, "the stream's session", func() bool { return connected() == 1 })
	id := f.send(t, "reboot")
	waitFor(t, "the stream that does not read to end", func() bool { return connected() == 0 })
	if st := f.status(t, id); st != registry.CommandSent {
		t.Fatalf("command is %s, want sent (not delivered)", st)
	}
	res, err := open(t, f.ctx, deviceClient(t, url, 0)).Receive()
	if err != nil || res.GetCommand().GetId() != id {
		t.Fatalf("next connection got %v, %v; want command %d", res, err, id)
	}
}
