package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/timestamppb"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// simOptions are simulate's flags.
type simOptions struct {
	devices, sensors int
	rate             float64
	protocol         string
	duration         time.Duration
	count            int
	use              []int64
	name             string
	httpURL, wsURL   string
	mqttAddr         string
	qos              int
	inflight         int
}

// simDevice is one simulated device: its key and the sensors it feeds.
type simDevice struct {
	id      int64
	key     string
	sensors []int64
}

// simStats counts what the simulated devices sent and what was acknowledged.
type simStats struct {
	sent, acked, errs atomic.Int64
	mu                sync.Mutex
	samples           map[string]int
}

func (s *simStats) fail(n int, err error) {
	s.errs.Add(int64(n))
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200]
	}
	s.mu.Lock()
	s.samples[msg] += n
	s.mu.Unlock()
}

// sender delivers one device's batches over one protocol; acknowledgements
// are counted into the stats as they arrive (synchronously for HTTP).
type sender interface {
	send(ctx context.Context, seq uint64, batch []*ingestv1.Reading) error
	// close waits (bounded) for the outstanding acknowledgements.
	close()
}

func (a *app) simulateCommand() *cobra.Command {
	o := simOptions{}
	cmd := &cobra.Command{
		Use:   "simulate",
		Short: "Generate readings from N devices × M sensors at a rate over http, ws, mqtt or grpc",
		Long: `Create N devices with M double sensors each (or use the devices given with --device and
their double/long sensors), then let every device send one reading per sensor --rate times a
second over --protocol until --for has passed or each sensor sent --count readings. Every
second it prints sent, acknowledged (durable) readings, acked/s and errors to stderr, and at
the end a summary in the -o format. Exits 1 when any reading was refused or not acknowledged.

The gateways default to the API host with the standard ports (HTTP :8083, WebSocket :8765,
MQTT :1883), over TLS when the API URL is https; grpc streams IngestStream to the API URL. MQTT publishes with QoS 1 (the PUBACK
is the acknowledgement); with --qos 0 nothing is acknowledged and only "sent" counts.

  iotctl simulate --devices 10 --sensors 3 --rate 5 --protocol mqtt --for 30s`,
		Args: nArgs(0, 0),
		RunE: func(cmd *cobra.Command, _ []string) error { return a.simulate(cmd, o) },
	}
	f := cmd.Flags()
	f.IntVarP(&o.devices, "devices", "n", envInt("IOT_SIM_DEVICES", 1), "devices to create ($IOT_SIM_DEVICES)")
	f.IntVarP(&o.sensors, "sensors", "m", envInt("IOT_SIM_SENSORS", 1), "sensors per device ($IOT_SIM_SENSORS)")
	f.Float64VarP(&o.rate, "rate", "r", 1, "readings per second per sensor")
	f.StringVar(&o.protocol, "protocol", env("IOT_SIM_PROTOCOL", "http"), "http, ws, mqtt or grpc ($IOT_SIM_PROTOCOL)")
	f.DurationVar(&o.duration, "for", 10*time.Second, "how long to run (unless --count is reached first)")
	f.IntVar(&o.count, "count", 0, "readings per sensor, then stop (0: run --for)")
	f.Int64SliceVar(&o.use, "device", nil, "use this existing device instead of creating devices (repeatable)")
	f.StringVar(&o.name, "name", "", "name prefix of created devices (default sim-<random>)")
	f.StringVar(&o.httpURL, "http-url", env("IOT_HTTP_URL", ""), "HTTP gateway URL ($IOT_HTTP_URL; default http://<api host>:8083/)")
	f.StringVar(&o.wsURL, "ws-url", env("IOT_WS_URL", ""), "WebSocket gateway URL ($IOT_WS_URL; default ws://<api host>:8765/)")
	f.StringVar(&o.mqttAddr, "mqtt-addr", env("IOT_MQTT_ADDR", ""), "MQTT broker ($IOT_MQTT_ADDR; default tcp://<api host>:1883)")
	f.IntVar(&o.qos, "qos", 1, "MQTT QoS, 0 or 1")
	f.IntVar(&o.inflight, "inflight", 32, "unacknowledged batches per device (ws, mqtt, grpc)")
	_ = cmd.RegisterFlagCompletionFunc("protocol", func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
		return []string{"http", "ws", "mqtt", "grpc"}, cobra.ShellCompDirectiveNoFileComp
	})
	return cmd
}

// envInt reads an int flag's default from its IOT_* variable (a value that
// does not parse is reported when the flag is checked).
func envInt(k string, def int) int {
	if v := os.Getenv(k); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return -1
		}
		return n
	}
	return def
}

func (o *simOptions) check(cmd *cobra.Command) error {
	switch {
	case o.devices < 1 || o.devices > 10000:
		return usageErr(cmd, "--devices (or $IOT_SIM_DEVICES) %d: want 1 to 10000", o.devices)
	case o.sensors < 1 || o.sensors > 1000:
		return usageErr(cmd, "--sensors (or $IOT_SIM_SENSORS) %d: want 1 to 1000", o.sensors)
	case o.rate <= 0 || o.rate > 1000 || math.IsNaN(o.rate):
		return usageErr(cmd, "--rate %g: want more than 0 and at most 1000 readings/s per sensor", o.rate)
	case o.protocol != "http" && o.protocol != "ws" && o.protocol != "mqtt" && o.protocol != "grpc":
		return usageErr(cmd, "--protocol (or $IOT_SIM_PROTOCOL) %q: want http, ws, mqtt or grpc", o.protocol)
	case o.qos != 0 && o.qos != 1:
		return usageErr(cmd, "--qos %d: want 0 or 1", o.qos)
	case o.count < 0 || o.duration <= 0 || o.inflight < 1:
		return usageErr(cmd, "--count, --for and --inflight must be positive")
	}
	return nil
}

func (a *app) simulate(cmd *cobra.Command, o simOptions) error {
	if err := o.check(cmd); err != nil {
		return err
	}
	c, err := a.connect()
	if err != nil {
		return err
	}
	api, err := url.Parse(a.apiURL())
	if err != nil || api.Host == "" {
		return fmt.Errorf("API URL %q: %v", a.apiURL(), err)
	}
	// The gateways default to the API's host and standard ports, with TLS
	// when the API is https (trusting the system roots, or $SSL_CERT_FILE).
	host := api.Hostname()
	web, ws, mqtt := "http://", "ws://", "tcp://"
	if api.Scheme == "https" {
		web, ws, mqtt = "https://", "wss://", "tls://"
	}
	if o.httpURL == "" {
		o.httpURL = web + hostPort(host, "8083") + "/"
	}
	if o.wsURL == "" {
		o.wsURL = ws + hostPort(host, "8765") + "/"
	}
	if o.mqttAddr == "" {
		o.mqttAddr = mqtt + hostPort(host, "1883")
	} else if !strings.Contains(o.mqttAddr, "://") {
		o.mqttAddr = mqtt + o.mqttAddr
	}
	pctx, cancel := context.WithTimeout(cmd.Context(), a.timeout+time.Duration(o.devices)*10*time.Millisecond)
	devs, err := a.simDevices(pctx, c, o)
	cancel()
	if err != nil {
		return err
	}
	ids := make([]string, len(devs))
	for i, d := range devs {
		ids[i] = strconv.FormatInt(d.id, 10)
	}
	fmt.Fprintf(a.errOut, "simulate: %d devices (%s) × %d sensors, %g readings/s per sensor over %s\n",
		len(devs), strings.Join(ids, ","), len(devs[0].sensors), o.rate, o.protocol)

	st := &simStats{samples: map[string]int{}}
	ctx, stop := context.WithTimeout(cmd.Context(), o.duration)
	defer stop()
	start := time.Now()
	done := make(chan struct{})
	go a.progress(done, st, start)
	var wg sync.WaitGroup
	for _, d := range devs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.runDevice(ctx, cmd.Context(), o, d, st)
		}()
	}
	wg.Wait()
	close(done)
	el := time.Since(start).Seconds()
	var samples []string
	for m, n := range st.samples {
		samples = append(samples, fmt.Sprintf("%d× %s", n, m))
	}
	sort.Strings(samples)
	sum := map[string]any{
		"protocol": o.protocol, "devices": len(devs), "sensors_per_device": len(devs[0].sensors), "rate": o.rate,
		"seconds": math.Round(el*100) / 100, "sent": st.sent.Load(), "acked": st.acked.Load(),
		"acked_per_second": math.Round(float64(st.acked.Load())/el*10) / 10, "errors": st.errs.Load(),
		"error_samples": strings.Join(samples, "; "), "device_ids": strings.Join(ids, ","),
	}
	cols := []string{"protocol", "devices", "sensors_per_device", "rate", "seconds", "sent", "acked", "acked_per_second", "errors", "error_samples", "device_ids"}
	if err := emit(a.out, a.output, records{cols: cols, rows: []map[string]any{sum}, single: true}); err != nil {
		return err
	}
	if n := st.errs.Load(); n > 0 {
		return fmt.Errorf("simulate: %d readings refused or not acknowledged", n)
	}
	return nil
}

func hostPort(host, port string) string {
	if strings.Contains(host, ":") {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// progress prints a line a second until done.
func (a *app) progress(done <-chan struct{}, st *simStats, start time.Time) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := int64(0)
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			acked := st.acked.Load()
			fmt.Fprintf(a.errOut, "simulate: %4.0fs sent %d acked %d (%d/s) errors %d\n",
				now.Sub(start).Seconds(), st.sent.Load(), acked, acked-last, st.errs.Load())
			last = acked
		}
	}
}

// simDevices creates the devices and sensors (or looks up the given ones)
// and fetches their keys.
func (a *app) simDevices(ctx context.Context, c *iot.Client, o simOptions) ([]simDevice, error) {
	var devs []simDevice
	if len(o.use) > 0 {
		for _, id := range o.use {
			ls, err := c.Core.ListSensors(ctx, &corev1.ListSensorsRequest{DeviceId: id})
			if err != nil {
				return nil, fmt.Errorf("device %d: %w", id, err)
			}
			d := simDevice{id: id}
			for _, s := range ls.GetResult() {
				if t := s.GetValueType(); (t == corev1.ValueType_VALUE_TYPE_DOUBLE || t == corev1.ValueType_VALUE_TYPE_LONG) && len(d.sensors) < o.sensors {
					d.sensors = append(d.sensors, s.GetId())
				}
			}
			if len(d.sensors) == 0 {
				return nil, fmt.Errorf("device %d has no double or long sensor to simulate", id)
			}
			devs = append(devs, d)
		}
	} else {
		prefix := o.name
		if prefix == "" {
			b := make([]byte, 3)
			_, _ = rand.Read(b)
			prefix = "sim-" + hex.EncodeToString(b)
		}
		// One ImportDevices call creates the devices with their sensors and
		// returns the ids and keys (all or nothing).
		req := &corev1.ImportDevicesRequest{ReturnKeys: true}
		for i := range o.devices {
			d := &corev1.DeviceImport{ExternalId: fmt.Sprintf("%s-%d", prefix, i+1), Name: fmt.Sprintf("%s-%d", prefix, i+1),
				Description: "created by iotctl simulate"}
			for j := range o.sensors {
				d.Sensors = append(d.Sensors, &corev1.SensorImport{Name: fmt.Sprintf("s%d", j+1), ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE})
			}
			req.Devices = append(req.Devices, d)
		}
		res, err := c.Core.ImportDevices(ctx, req)
		if err != nil {
			return nil, fmt.Errorf("create devices: %w", err)
		}
		for _, r := range res.GetResults() {
			devs = append(devs, simDevice{id: r.GetId(), key: r.GetKey(), sensors: r.GetSensorIds()})
		}
		if len(devs) != o.devices {
			return nil, fmt.Errorf("create devices: %d of %d created", len(devs), o.devices)
		}
		return devs, nil
	}
	for i := range devs {
		k, err := c.Core.GetDeviceKey(ctx, &corev1.GetDeviceKeyRequest{Id: devs[i].id})
		if err != nil {
			return nil, fmt.Errorf("device %d key: %w", devs[i].id, err)
		}
		devs[i].key = k.GetToken()
	}
	return devs, nil
}

// runDevice sends the device's batches at the rate until ctx ends (--for)
// or --count batches were sent, then waits for the outstanding acks. Sends
// run under sendCtx (ended only by an interrupt), so a batch under way when
// --for ends is still answered and counted.
func (a *app) runDevice(ctx, sendCtx context.Context, o simOptions, d simDevice, st *simStats) {
	s, err := a.newSender(sendCtx, o, d, st)
	if err != nil {
		st.fail(o.sensorsOr(d), err)
		return
	}
	defer s.close()
	tick := time.NewTicker(time.Duration(float64(time.Second) / o.rate))
	defer tick.Stop()
	for seq := uint64(1); o.count == 0 || seq <= uint64(o.count); seq++ {
		now := time.Now()
		batch := make([]*ingestv1.Reading, len(d.sensors))
		for j, sid := range d.sensors {
			v := math.Round((20+5*math.Sin(float64(seq)/10+float64(j)))*1000) / 1000
			batch[j] = &ingestv1.Reading{SensorId: sid, Timestamp: timestamppb.New(now), Value: &ingestv1.Reading_DoubleValue{DoubleValue: v}}
		}
		st.sent.Add(int64(len(batch)))
		if err := s.send(sendCtx, seq, batch); err != nil {
			if sendCtx.Err() != nil {
				st.sent.Add(-int64(len(batch)))
				return
			}
			st.fail(len(batch), err)
		}
		if o.count != 0 && seq == uint64(o.count) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (o simOptions) sensorsOr(d simDevice) int { return max(1, len(d.sensors)) }

func (a *app) newSender(ctx context.Context, o simOptions, d simDevice, st *simStats) (sender, error) {
	switch o.protocol {
	case "http":
		return &httpSender{url: o.httpURL, key: d.key, st: st}, nil
	case "ws":
		return newWSSender(ctx, o, d, st)
	case "mqtt":
		return newMQTTSender(o, d, st)
	}
	return newGRPCSender(a.apiURL(), o, d, st)
}

// readingsJSON is the gateways' JSON form of a batch.
func readingsJSON(batch []*ingestv1.Reading) []byte {
	type reading struct {
		SensorID  string  `json:"sensor_id"`
		Timestamp string  `json:"timestamp"`
		Value     float64 `json:"value"`
	}
	out := make([]reading, len(batch))
	for i, r := range batch {
		out[i] = reading{strconv.FormatInt(r.GetSensorId(), 10), r.GetTimestamp().AsTime().Format(time.RFC3339Nano), r.GetDoubleValue()}
	}
	b, _ := json.Marshal(out)
	return b
}

// gatewayAnswer is the HTTP gateway's and WebSocket acks' JSON.
type gatewayAnswer struct {
	Index    int    `json:"index"`
	Status   int    `json:"status"`
	Accepted int64  `json:"accepted"`
	Code     string `json:"code"`
	Message  string `json:"message"`
}

type httpSender struct {
	url, key string
	st       *simStats
}

var simHTTP = &http.Client{Timeout: 30 * time.Second}

func (h *httpSender) close() {}

func (h *httpSender) send(ctx context.Context, _ uint64, batch []*ingestv1.Reading) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.url, bytes.NewReader(readingsJSON(batch)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+h.key)
	resp, err := simHTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var ans gatewayAnswer
	_ = json.Unmarshal(body, &ans)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("http %d %s %s", resp.StatusCode, ans.Code, ans.Message)
	}
	h.st.acked.Add(ans.Accepted)
	if miss := int64(len(batch)) - ans.Accepted; miss > 0 {
		h.st.fail(int(miss), errors.New("http: fewer readings accepted than sent"))
	}
	return nil
}

// wsSender writes batches as text messages and counts the acks a reader
// goroutine receives, at most --inflight outstanding.
type wsSender struct {
	conn     *websocket.Conn
	st       *simStats
	slots    chan int // sizes of the outstanding batches, in order
	readDone chan struct{}
	cancel   context.CancelFunc
}

func newWSSender(ctx context.Context, o simOptions, d simDevice, st *simStats) (*wsSender, error) {
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(dctx, o.wsURL, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + d.key}}})
	if err != nil {
		return nil, fmt.Errorf("ws connect: %w", err)
	}
	conn.SetReadLimit(1 << 20)
	rctx, rcancel := context.WithCancel(context.Background())
	w := &wsSender{conn: conn, st: st, slots: make(chan int, o.inflight), readDone: make(chan struct{}), cancel: rcancel}
	go w.read(rctx)
	return w, nil
}

func (w *wsSender) read(ctx context.Context) {
	defer close(w.readDone)
	for {
		_, msg, err := w.conn.Read(ctx)
		if err != nil {
			for {
				select {
				case n := <-w.slots:
					w.st.fail(n, fmt.Errorf("ws: no ack: %v", err))
				default:
					return
				}
			}
		}
		var n int
		select {
		case n = <-w.slots:
		default:
			w.st.fail(1, fmt.Errorf("ws: a frame with no message outstanding: %.100s", msg))
			continue
		}
		var ans gatewayAnswer
		if err := json.Unmarshal(msg, &ans); err != nil || ans.Status != 200 {
			w.st.fail(n, fmt.Errorf("ws %d %s %s", ans.Status, ans.Code, ans.Message))
			continue
		}
		w.st.acked.Add(ans.Accepted)
	}
}

func (w *wsSender) send(ctx context.Context, _ uint64, batch []*ingestv1.Reading) error {
	select {
	case w.slots <- len(batch):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := w.conn.Write(ctx, websocket.MessageText, readingsJSON(batch)); err != nil {
		<-w.slots
		return fmt.Errorf("ws: %w", err)
	}
	return nil
}

func (w *wsSender) close() {
	deadline := time.Now().Add(10 * time.Second)
	for len(w.slots) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	_ = w.conn.Close(websocket.StatusNormalClosure, "")
	w.cancel()
	<-w.readDone
}

// mqttSender publishes to the device's topic; with QoS 1 the PUBACK (sent
// once the readings are durable) is the acknowledgement.
type mqttSender struct {
	client pahov3.Client
	topic  string
	qos    byte
	st     *simStats
	slots  chan struct{}
	wg     sync.WaitGroup
}

func newMQTTSender(o simOptions, d simDevice, st *simStats) (*mqttSender, error) {
	opts := pahov3.NewClientOptions().AddBroker(o.mqttAddr).SetUsername("JWT").SetPassword(d.key).
		SetClientID(fmt.Sprintf("iotctl-sim-%d-%d", d.id, time.Now().UnixNano())).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second)
	c := pahov3.NewClient(opts)
	if t := c.Connect(); !t.WaitTimeout(15*time.Second) || t.Error() != nil {
		err := t.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return nil, fmt.Errorf("mqtt connect %s: %w", o.mqttAddr, err)
	}
	return &mqttSender{client: c, topic: strconv.FormatInt(d.id, 10), qos: byte(o.qos), st: st, slots: make(chan struct{}, o.inflight)}, nil
}

func (m *mqttSender) send(ctx context.Context, _ uint64, batch []*ingestv1.Reading) error {
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	t := m.client.Publish(m.topic, m.qos, false, readingsJSON(batch))
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() { <-m.slots }()
		if !t.WaitTimeout(30 * time.Second) {
			m.st.fail(len(batch), errors.New("mqtt: no PUBACK within 30s"))
			return
		}
		if err := t.Error(); err != nil {
			m.st.fail(len(batch), fmt.Errorf("mqtt: %w", err))
			return
		}
		if m.qos > 0 {
			m.st.acked.Add(int64(len(batch)))
		}
	}()
	return nil
}

func (m *mqttSender) close() {
	m.wg.Wait()
	m.client.Disconnect(250)
}

// grpcSender streams IngestStream; a reader goroutine counts the acks.
type grpcSender struct {
	stream interface {
		Send(*ingestv1.IngestStreamRequest) error
	}
	closeReq func() error
	st       *simStats
	slots    chan int
	readDone chan struct{}
	cancel   context.CancelFunc
}

func newGRPCSender(api string, o simOptions, d simDevice, st *simStats) (*grpcSender, error) {
	opts := []iot.Option{iot.WithToken(d.key), iot.WithGRPC()}
	if strings.HasPrefix(api, "https://") {
		opts = append(opts, iot.WithTLS(&tls.Config{MinVersion: tls.VersionTLS12}))
	}
	c := iot.New(api, opts...)
	ctx, cancel := context.WithCancel(context.Background())
	stream, err := c.Ingest.IngestStream(ctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("grpc: %w", err)
	}
	g := &grpcSender{stream: stream, closeReq: stream.CloseRequest, st: st, slots: make(chan int, o.inflight), readDone: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(g.readDone)
		for {
			resp, err := stream.Receive()
			if err != nil {
				for {
					select {
					case n := <-g.slots:
						if !errors.Is(err, io.EOF) {
							st.fail(n, fmt.Errorf("grpc: no ack: %v", err))
						} else {
							st.fail(n, errors.New("grpc: stream ended before the ack"))
						}
					default:
						_ = stream.CloseResponse()
						return
					}
				}
			}
			n := <-g.slots
			if len(resp.GetErrors()) > 0 {
				e := resp.GetErrors()[0]
				st.fail(n-int(resp.GetAccepted()), fmt.Errorf("grpc %s %s", e.GetCode(), e.GetMessage()))
			}
			st.acked.Add(int64(resp.GetAccepted()))
		}
	}()
	return g, nil
}

func (g *grpcSender) send(ctx context.Context, seq uint64, batch []*ingestv1.Reading) error {
	select {
	case g.slots <- len(batch):
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := g.stream.Send(&ingestv1.IngestStreamRequest{Sequence: seq, Readings: batch}); err != nil {
		<-g.slots
		return fmt.Errorf("grpc: %w", err)
	}
	return nil
}

func (g *grpcSender) close() {
	_ = g.closeReq()
	select {
	case <-g.readDone:
	case <-time.After(15 * time.Second):
		g.cancel()
		<-g.readDone
	}
	g.cancel()
}
