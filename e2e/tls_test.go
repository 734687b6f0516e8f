package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/coder/websocket"
	pahov3 "github.com/eclipse/paho.mqtt.golang"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/internal/tlsconfig/tlstest"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// tlsPlatform is a platform serving TLS on every listener with a throwaway
// CA, and optionally accepting device certificates of a second CA.
type tlsPlatform struct {
	*Platform
	dir    string
	ca     *tlstest.CA // issues the server certificate
	server tlstest.Leaf
	devCA  *tlstest.CA // issues device certificates (nil: no mutual TLS)
	roots  *x509.CertPool
}

func startTLS(t *testing.T, mutual bool, extra ...string) *tlsPlatform {
	t.Helper()
	tp := &tlsPlatform{dir: t.TempDir()}
	tp.ca = tlstest.NewCA(t, tp.dir, "server")
	tp.server = tp.ca.Server(t, tp.dir, "server")
	tp.roots = x509.NewCertPool()
	tp.roots.AddCert(tp.ca.Cert)
	args := append([]string{"--tls-cert", tp.server.CertFile, "--tls-key", tp.server.KeyFile, "--tls-reload-interval", "100ms"}, extra...)
	if mutual {
		tp.devCA = tlstest.NewCA(t, tp.dir, "devices")
		args = append(args, "--tls-client-ca", tp.devCA.CertFile)
	}
	tp.Platform = Start(t, Options{Args: args, TLSRoots: tp.roots})
	return tp
}

// tlsConfig trusts the server CA and presents cert when given.
func (tp *tlsPlatform) tlsConfig(cert *tlstest.Leaf) *tls.Config {
	cfg := &tls.Config{RootCAs: tp.roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{{Certificate: [][]byte{cert.Cert.Raw}, PrivateKey: cert.Key, Leaf: cert.Cert}}
	}
	return cfg
}

// servedSerial handshakes with addr and returns the serial number of the
// certificate the server presented.
func (tp *tlsPlatform) servedSerial(t *testing.T, addr string) string {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: tp.roots, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("handshake with %s: %v", addr, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func run(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	if filepath.IsAbs(name) {
		if _, err := os.Stat(name); err == nil {
			return name
		}
	} else if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("IOT_TEST_REQUIRE_SERVICES") == "1" {
		t.Fatalf("%s missing (make test installs it)", name)
	}
	t.Skipf("%s missing (make test installs it)", name)
	return ""
}

func grpcurlPath(t *testing.T) string {
	p, err := filepath.Abs(filepath.Join("..", "bin", "tools", "grpcurl"))
	if err != nil {
		t.Fatal(err)
	}
	return needTool(t, p)
}

// wssPush sends one JSON reading over an open WebSocket and checks its ack.
func wssPush(ctx context.Context, t *testing.T, c *websocket.Conn, sensor string, v string) {
	t.Helper()
	if err := c.Write(ctx, websocket.MessageText, []byte(`{"sensor_id":`+sensor+`,"value":`+v+`}`)); err != nil {
		t.Fatalf("wss write: %v", err)
	}
	_, ack, err := c.Read(ctx)
	if err != nil || !bytes.Contains(ack, []byte(`"status":200`)) {
		t.Fatalf("wss ack: %s %v", ack, err)
	}
}

func TestTLS_EveryEdgeWithRealClients(t *testing.T) {
	curl := needTool(t, "curl")
	mosquitto := needTool(t, "mosquitto_pub")
	grpcurl := grpcurlPath(t)
	tp := startTLS(t, false)
	admin := tp.AdminToken() // REST over HTTPS (the harness client trusts the CA)
	d := tp.NewDevice(admin, "tls-device", "double")
	ca := tp.ca.CertFile

	// Plain HTTP on a TLS listener gets no API answer.
	if resp, err := http.Get("http://" + tp.API + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Error("plain HTTP answered 200 on the TLS API listener")
		}
	}
	// curl: the API negotiates HTTP/2 by ALPN; HTTPS ingest takes a reading.
	if out, err := run(t, curl, "-sS", "--fail", "--cacert", ca, "-o", "/dev/null", "-w", "%{http_version}", "https://"+tp.API+"/healthz"); err != nil || out != "2" {
		t.Errorf("curl https API: HTTP version %q, %v (want 2)", out, err)
	}
	if out, err := run(t, curl, "-sS", "--cacert", ca, "--http1.1", "-H", "authorization: Bearer "+d.Token,
		"-H", "Content-Type: application/json", "-d", `{"sensor_id":"`+d.SensorID+`","value":"1"}`, "https://"+tp.HTTP+"/"); err != nil || !strings.Contains(out, `{"accepted":1}`) {
		t.Errorf("curl https ingest: %s %v", out, err)
	}
	if out, err := run(t, curl, "-sS", "--http1.1", "https://"+tp.HTTP+"/"); err == nil {
		t.Errorf("curl without --cacert trusted the test CA: %s", out)
	}
	// WebSocket over TLS (wss://).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tp.tlsConfig(nil)}}
	c, _, err := websocket.Dial(ctx, "wss://"+tp.WS+"/", &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + d.Token}}})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	wssPush(ctx, t, c, d.SensorID, "2")
	c.Close(websocket.StatusNormalClosure, "")
	// MQTT over TLS with mosquitto_pub --cafile (MQTT 5, QoS 1).
	_, port, _ := net.SplitHostPort(tp.MQTT)
	if out, err := run(t, mosquitto, "-h", "localhost", "-p", port, "--cafile", ca, "-V", "mqttv5", "-q", "1",
		"-u", "JWT", "-P", d.Token, "-t", d.ID, "-m", `{"sensor_id":`+d.SensorID+`,"value":3}`); err != nil {
		t.Errorf("mosquitto_pub over TLS: %v %s", err, out)
	}
	// grpcurl over TLS: reflection and a call.
	if out, err := run(t, grpcurl, "-cacert", ca, "-H", "authorization: Bearer "+admin, tp.API, "iot.core.v1.CoreService/GetCurrentUser"); err != nil || !strings.Contains(out, `"username": "root"`) {
		t.Errorf("grpcurl over TLS: %s %v", out, err)
	}
	// The Go SDK: gRPC over TLS (HTTP/2 by ALPN), a bidirectional stream.
	dev := iot.New(tp.URL(), iot.WithTLS(tp.tlsConfig(nil)), iot.WithGRPC(), iot.WithToken(d.Token))
	s, err := dev.Ingest.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sensor := mustID(t, d.SensorID)
	if err := s.Send(&ingestv1.IngestStreamRequest{Sequence: 4, Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: 4}}}}); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Receive(); err != nil || r.GetSequence() != 4 || r.GetAccepted() != 1 {
		t.Fatalf("SDK stream over TLS: %v %v", r, err)
	}
	_ = s.CloseRequest()
	// Connect protocol over HTTPS through the SDK.
	user := iot.New(tp.URL(), iot.WithTLS(tp.tlsConfig(nil)), iot.WithToken(admin))
	if me, err := user.Core.GetCurrentUser(ctx, &corev1.GetCurrentUserRequest{}); err != nil || me.GetResult().GetUsername() != "root" {
		t.Fatalf("SDK Connect over TLS: %v %v", me, err)
	}
	if got := values(waitReadings(t, tp.Platform, admin, d.SensorID, 4)); len(got) != 4 || got[0] != 1 || got[3] != 4 {
		t.Fatalf("readings pushed over TLS: %v, want 1..4", got)
	}
}

func TestTLS_CertificateReloadKeepsOpenConnections(t *testing.T) {
	tp := startTLS(t, false)
	admin := tp.AdminToken()
	d := tp.NewDevice(admin, "reload-device", "double")
	first := tp.server.Cert.SerialNumber.String()
	for _, addr := range []string{tp.API, tp.HTTP, tp.WS, tp.MQTT} {
		if got := tp.servedSerial(t, addr); got != first {
			t.Fatalf("%s presents serial %s, want %s", addr, got, first)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tp.tlsConfig(nil)}}
	c, _, err := websocket.Dial(ctx, "wss://"+tp.WS+"/", &websocket.DialOptions{HTTPClient: hc, HTTPHeader: http.Header{"Authorization": {"Bearer " + d.Token}}})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer c.CloseNow()
	wssPush(ctx, t, c, d.SensorID, "1")

	// Rotate: new key and certificate written over the same files.
	second := tp.ca.Server(t, tp.dir, "server").Cert.SerialNumber.String()
	deadline := time.Now().Add(10 * time.Second)
	for _, addr := range []string{tp.API, tp.HTTP, tp.WS, tp.MQTT} {
		for tp.servedSerial(t, addr) != second {
			if time.Now().After(deadline) {
				t.Fatalf("%s still presents the old certificate 10s after the files changed\n%s", addr, tail(tp.Logs(), 20))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The WebSocket opened before the rotation still works.
	wssPush(ctx, t, c, d.SensorID, "2")
	if !strings.Contains(tp.Logs(), "tls files reloaded") {
		t.Error("the reload was not logged")
	}
}

func TestTLS_RefusesToStartOnBadFiles(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "x")
	leaf := ca.Server(t, dir, "server")
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"cert without key":  {[]string{"--tls-cert", leaf.CertFile}, "IOT_TLS_KEY"},
		"missing file":      {[]string{"--tls-cert", dir + "/nope.pem", "--tls-key", leaf.KeyFile}, "nope.pem"},
		"client CA no cert": {[]string{"--tls-client-ca", ca.CertFile}, "IOT_TLS_CLIENT_CA"},
		"mqtt key only":     {[]string{"--mqtt-tls-key", leaf.KeyFile}, "IOT_MQTT_TLS_CERT"},
	} {
		t.Run(name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", t.TempDir(), "--api-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0",
				"--ws-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0"}, tc.args...)
			cmd := exec.Command(binary, args...)
			cmd.Env = append(os.Environ(), "IOT_ADMIN_PASSWORD=pw-"+randHex(6))
			done := make(chan struct{})
			var out []byte
			var err error
			go func() { out, err = cmd.CombinedOutput(); close(done) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-done
				t.Fatalf("serve did not refuse to start:\n%s", out)
			}
			if err == nil || !strings.Contains(string(out), tc.want) {
				t.Fatalf("serve %v: err %v, output lacks %q:\n%s", tc.args, err, tc.want, out)
			}
		})
	}
}

// deviceCert issues a device certificate (URI SAN iotplatform:device:<id>)
// from ca and, when register is set, registers its fingerprint through REST
// in the colon form openssl prints.
func (tp *tlsPlatform) deviceCert(t *testing.T, ca *tlstest.CA, token, deviceID, name string, register bool) tlstest.Leaf {
	t.Helper()
	l := ca.Client(t, tp.dir, name, name, "iotplatform:device:"+deviceID)
	if register {
		fp := l.Fingerprint()
		var colons []string
		for i := 0; i < len(fp); i += 2 {
			colons = append(colons, strings.ToUpper(fp[i:i+2]))
		}
		r := tp.Do("POST", "/api/devices/"+deviceID+"/certificates", token, map[string]string{"fingerprint": strings.Join(colons, ":")})
		if r.Status != 200 || r.Str("result.fingerprint") != fp {
			t.Fatalf("register certificate: %d %s", r.Status, r.Body)
		}
	}
	return l
}

// mtlsEdges pushes one reading with certificate l (no token) through every
// edge and returns, per edge, nil when accepted or the refusal seen.
func (tp *tlsPlatform) mtlsEdges(t *testing.T, d Device, l tlstest.Leaf, value int) map[string]string {
	t.Helper()
	out := map[string]string{}
	ca := tp.ca.CertFile
	v := strconv.Itoa(value)
	// HTTP gateway with curl.
	code, err := run(t, "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca, "--cert", l.CertFile, "--key", l.KeyFile,
		"-H", "Content-Type: application/json", "-d", `{"sensor_id":"`+d.SensorID+`","value":`+v+`}`, "https://"+tp.HTTP+"/")
	if err != nil {
		t.Fatalf("curl: %v %s", err, code)
	}
	out["http"] = code
	// IngestService over gRPC with grpcurl.
	g, _ := run(t, grpcurlPath(t), "-cacert", ca, "-cert", l.CertFile, "-key", l.KeyFile,
		"-d", `{"readings":[{"sensor_id":`+d.SensorID+`,"double_value":`+v+`}]}`, tp.API, "iot.ingest.v1.IngestService/Ingest")
	switch {
	case strings.Contains(g, `"accepted": 1`):
		out["grpc"] = "200"
	case strings.Contains(g, "Unauthenticated"):
		out["grpc"] = "Unauthenticated"
	default:
		out["grpc"] = g
	}
	// WebSocket over TLS (Go client).
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := tp.tlsConfig(&l)
	c, resp, err := websocket.Dial(ctx, "wss://"+tp.WS+"/", &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}})
	if err != nil {
		if resp == nil {
			t.Fatalf("wss dial: %v", err)
		}
		out["ws"] = strconv.Itoa(resp.StatusCode)
	} else {
		wssPush(ctx, t, c, d.SensorID, v)
		c.Close(websocket.StatusNormalClosure, "")
		out["ws"] = "200"
	}
	// MQTT over TLS with mosquitto_pub --cert/--key, no username.
	_, port, _ := net.SplitHostPort(tp.MQTT)
	m, err := run(t, "mosquitto_pub", "-h", "localhost", "-p", port, "--cafile", ca, "--cert", l.CertFile, "--key", l.KeyFile,
		"-V", "mqttv5", "-q", "1", "-i", "cert-"+v, "-t", d.ID, "-m", `{"sensor_id":`+d.SensorID+`,"value":`+v+`}`)
	switch {
	case err == nil:
		out["mqtt"] = "200"
	case strings.Contains(m, "Bad User Name or Password"): // MQTT 5 CONNACK 0x86
		out["mqtt"] = "bad credentials"
	default:
		out["mqtt"] = m
	}
	// The Go SDK: gRPC over TLS with the certificate, a bidirectional stream.
	sdk := iot.New(tp.URL(), iot.WithTLS(cfg), iot.WithGRPC())
	s, err := sdk.Ingest.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = s.Send(&ingestv1.IngestStreamRequest{Sequence: 1, Readings: []*ingestv1.Reading{{SensorId: mustID(t, d.SensorID), Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(value)}}}})
	r, err := s.Receive()
	switch {
	case err == nil && r.GetAccepted() == 1:
		out["sdk"] = "200"
	case connect.CodeOf(err) == connect.CodeUnauthenticated:
		out["sdk"] = "Unauthenticated"
	default:
		out["sdk"] = fmt.Sprint(r, err)
	}
	_ = s.CloseRequest()
	return out
}

func wantEdges(t *testing.T, what string, got map[string]string, ok bool) {
	t.Helper()
	want := map[string]string{"http": "401", "grpc": "Unauthenticated", "ws": "401", "mqtt": "bad credentials", "sdk": "Unauthenticated"}
	if ok {
		want = map[string]string{"http": "200", "grpc": "200", "ws": "200", "mqtt": "200", "sdk": "200"}
	}
	for edge, w := range want {
		if got[edge] != w {
			t.Errorf("%s on %s: %q, want %q", what, edge, got[edge], w)
		}
	}
}

func TestMTLS_DeviceCertificatesOnEveryEdge(t *testing.T) {
	needTool(t, "curl")
	needTool(t, "mosquitto_pub")
	grpcurlPath(t)
	tp := startTLS(t, true)
	admin := tp.AdminToken()
	d := tp.NewDevice(admin, "mtls-device", "double")
	good := tp.deviceCert(t, tp.devCA, admin, d.ID, "good", true)
	unregistered := tp.deviceCert(t, tp.devCA, admin, d.ID, "unregistered", false)
	foreignCA := tlstest.NewCA(t, tp.dir, "foreign")
	foreign := tp.deviceCert(t, foreignCA, admin, d.ID, "foreign", true) // registered, but not issued by the client CA

	wantEdges(t, "registered certificate", tp.mtlsEdges(t, d, good, 1), true)
	wantEdges(t, "signed but unregistered certificate", tp.mtlsEdges(t, d, unregistered, 2), false)
	wantEdges(t, "certificate of another CA", tp.mtlsEdges(t, d, foreign, 3), false)

	// Token devices keep working on the same mutual-TLS ports.
	if out, err := run(t, "curl", "-sS", "--cacert", tp.ca.CertFile, "-H", "authorization: Bearer "+d.Token,
		"-H", "Content-Type: application/json", "-d", `{"sensor_id":"`+d.SensorID+`","value":4}`, "https://"+tp.HTTP+"/"); err != nil || !strings.Contains(out, `{"accepted":1}`) {
		t.Errorf("token device on the mTLS port: %s %v", out, err)
	}
	// Only the registered certificate's 5 readings and the token's one landed.
	if got := values(waitReadings(t, tp.Platform, admin, d.SensorID, 6)); fmt.Sprint(got) != "[1 1 1 1 1 4]" {
		t.Errorf("stored readings %v, want five 1s (certificate) and 4 (token)", got)
	}

	// Listing and revocation: removing the fingerprint refuses the device
	// within the auth cache TTL (200ms in these tests).
	l := tp.Do("GET", "/api/devices/"+d.ID+"/certificates", admin, nil)
	if l.Status != 200 || strings.Count(string(l.Body), `"fingerprint"`) != 2 || !strings.Contains(string(l.Body), good.Fingerprint()) {
		t.Fatalf("list certificates: %d %s", l.Status, l.Body)
	}
	if r := tp.Do("DELETE", "/api/devices/"+d.ID+"/certificates/"+good.Fingerprint(), admin, nil); r.Status != 200 {
		t.Fatalf("remove certificate: %d %s", r.Status, r.Body)
	}
	time.Sleep(300 * time.Millisecond)
	wantEdges(t, "removed certificate", tp.mtlsEdges(t, d, good, 5), false)
}

func TestMTLS_CertificateRegistrationIsOwnerOnly(t *testing.T) {
	tp := startTLS(t, true)
	admin := tp.AdminToken()
	d := tp.NewDevice(admin, "owned", "double")
	fp := strings.Repeat("ab", 32)
	if r := tp.Do("POST", "/api/users", admin, map[string]string{"username": "mallory", "password": "mallory-pw-1"}); r.Status != 200 {
		t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
	mallory := tp.SignIn("mallory", "mallory-pw-1")
	for _, c := range []struct {
		method, path, token string
		body                any
		want                int
	}{
		// Another user's device does not exist for mallory (Core answers 404, never confirming it exists).
		{"POST", "/api/devices/" + d.ID + "/certificates", mallory, map[string]string{"fingerprint": fp}, 404},
		{"POST", "/api/devices/" + d.ID + "/certificates", "", map[string]string{"fingerprint": fp}, 401},
		{"POST", "/api/devices/" + d.ID + "/certificates", d.Token, map[string]string{"fingerprint": fp}, 403},
		{"POST", "/api/devices/" + d.ID + "/certificates", admin, map[string]string{"fingerprint": "not-hex"}, 400},
		// 200, not 409: none of the refused attempts above registered fp.
		{"POST", "/api/devices/" + d.ID + "/certificates", admin, map[string]string{"fingerprint": fp}, 200},
		{"POST", "/api/devices/" + d.ID + "/certificates", admin, map[string]string{"fingerprint": strings.ToUpper(fp)}, 409},
		{"GET", "/api/devices/" + d.ID + "/certificates", mallory, nil, 404},
		{"DELETE", "/api/devices/" + d.ID + "/certificates/" + fp, mallory, nil, 404},
		{"DELETE", "/api/devices/" + d.ID + "/certificates/" + strings.Repeat("cd", 32), admin, nil, 404},
		{"DELETE", "/api/devices/" + d.ID + "/certificates/" + fp, admin, nil, 200},
	} {
		if r := tp.Do(c.method, c.path, c.token, c.body); r.Status != c.want {
			t.Errorf("%s %s: %d %s, want %d", c.method, c.path, r.Status, r.Body, c.want)
		}
	}
}

func TestMTLS_RemovingTheFingerprintEndsOpenConnections(t *testing.T) {
	tp := startTLS(t, true)
	admin := tp.AdminToken()
	d := tp.NewDevice(admin, "open-conns", "double")
	cert := tp.deviceCert(t, tp.devCA, admin, d.ID, "open", true)
	cfg := tp.tlsConfig(&cert)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// WebSocket, MQTT and an IngestStream, each authenticated by the
	// certificate only and working.
	ws, _, err := websocket.Dial(ctx, "wss://"+tp.WS+"/", &websocket.DialOptions{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	wssPush(ctx, t, ws, d.SensorID, "1")
	mc := pahov3.NewClient(pahov3.NewClientOptions().AddBroker("ssl://" + tp.MQTT).SetTLSConfig(cfg).
		SetClientID("open-" + d.ID).SetProtocolVersion(4).SetAutoReconnect(false))
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect with a certificate: %v", tk.Error())
	}
	defer mc.Disconnect(0)
	if tk := mc.Publish(d.ID, 1, false, `{"sensor_id":`+d.SensorID+`,"value":2}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt publish: %v", tk.Error())
	}
	stream, err := iot.New(tp.URL(), iot.WithTLS(cfg), iot.WithGRPC()).Ingest.IngestStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sensor := mustID(t, d.SensorID)
	send := func(seq uint64) (*ingestv1.IngestStreamResponse, error) {
		if err := stream.Send(&ingestv1.IngestStreamRequest{Sequence: seq, Readings: []*ingestv1.Reading{{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: float64(seq)}}}}); err != nil {
			return nil, err
		}
		return stream.Receive()
	}
	if r, err := send(3); err != nil || r.GetAccepted() != 1 {
		t.Fatalf("stream with a certificate: %v %v", r, err)
	}

	if r := tp.Do("DELETE", "/api/devices/"+d.ID+"/certificates/"+cert.Fingerprint(), admin, nil); r.Status != 200 {
		t.Fatalf("remove certificate: %d %s", r.Status, r.Body)
	}
	time.Sleep(400 * time.Millisecond) // > --auth-cache-ttl (200ms)

	if err := ws.Write(ctx, websocket.MessageText, []byte(`{"sensor_id":`+d.SensorID+`,"value":4}`)); err != nil {
		t.Fatal(err)
	}
	if _, ack, err := ws.Read(ctx); err != nil || !bytes.Contains(ack, []byte(`"status":401`)) {
		t.Errorf("WebSocket after revocation: ack %s, %v; want status 401", ack, err)
	}
	if _, _, err := ws.Read(ctx); err == nil {
		t.Error("WebSocket still open after revocation")
	}
	tk := mc.Publish(d.ID, 1, false, `{"sensor_id":`+d.SensorID+`,"value":5}`)
	if tk.WaitTimeout(5*time.Second) && tk.Error() == nil {
		t.Error("MQTT publish acknowledged after revocation")
	}
	for deadline := time.Now().Add(5 * time.Second); mc.IsConnectionOpen(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Error("MQTT connection still open after revocation")
			break
		}
	}
	if r, err := send(6); connect.CodeOf(err) != connect.CodeUnauthenticated {
		t.Errorf("IngestStream after revocation: %v %v, want Unauthenticated", r, err)
	}
	if got := values(waitReadings(t, tp.Platform, admin, d.SensorID, 3)); fmt.Sprint(got) != "[1 2 3]" {
		t.Errorf("stored readings %v, want only those sent before revocation [1 2 3]", got)
	}
}

func TestTLS_PerListenerPairOverridesAndOnlyThatListenerServesTLS(t *testing.T) {
	dir := t.TempDir()
	ca := tlstest.NewCA(t, dir, "srv")
	mqttCert := ca.Server(t, dir, "mqtt")
	p := Start(t, Options{Args: []string{"--mqtt-tls-cert", mqttCert.CertFile, "--mqtt-tls-key", mqttCert.KeyFile}})
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	tp := &tlsPlatform{Platform: p, roots: roots}
	if got := tp.servedSerial(t, p.MQTT); got != mqttCert.Cert.SerialNumber.String() {
		t.Errorf("MQTT presents serial %s, want its own certificate %s", got, mqttCert.Cert.SerialNumber)
	}
	// The other listeners stay plain: the harness reached /readyz over
	// http://, and the HTTP gateway answers plain HTTP.
	if s := postReading(t, p, "", "application/json", []byte(`{}`)); s != http.StatusUnauthorized {
		t.Errorf("plain HTTP gateway answered %d, want 401", s)
	}
	if logs := p.Logs(); !strings.Contains(logs, "server=api addr="+p.API+" tls=false") || !strings.Contains(logs, "server=mqtt addr="+p.MQTT+" tls=true") {
		t.Errorf("the listening log lines do not say which listeners are plain:\n%s", tail(p.Logs(), 20))
	}

	// A listener's own pair wins over the shared one.
	shared := ca.Server(t, dir, "shared")
	apiOwn := ca.Server(t, dir, "api")
	sp := Start(t, Options{Args: []string{"--tls-cert", shared.CertFile, "--tls-key", shared.KeyFile,
		"--api-tls-cert", apiOwn.CertFile, "--api-tls-key", apiOwn.KeyFile}, TLSRoots: roots})
	stp := &tlsPlatform{Platform: sp, roots: roots}
	if got := stp.servedSerial(t, sp.API); got != apiOwn.Cert.SerialNumber.String() {
		t.Errorf("API presents serial %s, want its own %s", got, apiOwn.Cert.SerialNumber)
	}
	for _, addr := range []string{sp.HTTP, sp.WS, sp.MQTT} {
		if got := stp.servedSerial(t, addr); got != shared.Cert.SerialNumber.String() {
			t.Errorf("%s presents serial %s, want the shared %s", addr, got, shared.Cert.SerialNumber)
		}
	}
}
