package query

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"

	queryv1 "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/gen/iot/query/v1/queryv1connect"
	"github.com/iotplatform/iotplatform/internal/apierror"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/internal/deadletter"
	"github.com/iotplatform/iotplatform/internal/gengrpc/queryv1grpc"
	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/registry/registrysql"
	"github.com/iotplatform/iotplatform/internal/store"
	"github.com/iotplatform/iotplatform/internal/store/storeembedded"
)

// tokens maps bearer tokens to principals ("user", "admin", ...).
type tokens map[string]authn.Principal

func (t tokens) Authenticate(_ context.Context, tok string) (authn.Principal, error) {
	p, ok := t[tok]
	if !ok {
		return authn.Principal{}, authn.ErrInvalidToken
	}
	return p, nil
}

type fixture struct {
	t       *testing.T
	reg     *registrysql.DB
	st      *storeembedded.Store
	svc     *Service
	srv     *httptest.Server
	client  queryv1connect.QueryServiceClient
	toks    tokens
	owner   registry.User
	dev     registry.Device
	sensor  registry.Sensor // double
	strSens registry.Sensor // string
	other   registry.Sensor // another user's sensor
	cons    registry.Consumer
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	reg, err := registrysql.OpenSQLite(ctx, filepath.Join(t.TempDir(), "reg.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { reg.Close() })
	st, err := storeembedded.Open(ctx, slog.New(slog.DiscardHandler), storeembedded.Config{Path: filepath.Join(t.TempDir(), "readings.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f := &fixture{t: t, reg: reg, st: st}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f.owner, err = reg.CreateUser(ctx, registry.User{Username: "alice", Role: registry.RoleUser, PasswordHash: "x"})
	must(err)
	stranger, err := reg.CreateUser(ctx, registry.User{Username: "bob", Role: registry.RoleUser, PasswordHash: "x"})
	must(err)
	f.dev, err = reg.CreateDevice(ctx, registry.Device{OwnerID: f.owner.ID, Name: "d1"})
	must(err)
	bobDev, err := reg.CreateDevice(ctx, registry.Device{OwnerID: stranger.ID, Name: "d2"})
	must(err)
	f.sensor, err = reg.CreateSensor(ctx, registry.Sensor{DeviceID: f.dev.ID, Name: "temp", Type: registry.TypeDouble})
	must(err)
	f.strSens, err = reg.CreateSensor(ctx, registry.Sensor{DeviceID: f.dev.ID, Name: "state", Type: registry.TypeString})
	must(err)
	f.other, err = reg.CreateSensor(ctx, registry.Sensor{DeviceID: bobDev.ID, Name: "x", Type: registry.TypeDouble})
	must(err)
	f.cons, err = reg.CreateConsumer(ctx, registry.Consumer{OwnerID: f.owner.ID, Name: "c"})
	must(err)
	must(reg.Grant(ctx, f.cons.ID, f.sensor.ID))
	f.toks = tokens{
		"alice":    {Kind: authn.KindUser, ID: f.owner.ID},
		"bob":      {Kind: authn.KindUser, ID: stranger.ID},
		"admin":    {Kind: authn.KindUser, ID: 999, Admin: true},
		"consumer": {Kind: authn.KindConsumer, ID: f.cons.ID},
		"device":   {Kind: authn.KindDevice, ID: f.dev.ID},
		"bobdev":   {Kind: authn.KindDevice, ID: bobDev.ID},
	}
	f.svc = New(slog.New(slog.DiscardHandler), reg, st, Config{})
	mux := http.NewServeMux()
	mux.Handle(queryv1connect.NewQueryServiceHandler(f.svc, connect.WithInterceptors(authn.NewInterceptor(f.toks))))
	gw := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true},
	}), runtime.WithErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, _ *http.Request, err error) {
		apierror.WriteConnect(w, err) // the mapper app/api.go's restError uses
	}))
	if err := queryv1grpc.RegisterQueryServiceHandlerServer(ctx, gw, RESTServer{f.svc}); err != nil {
		t.Fatal(err)
	}
	rest := authn.Middleware(f.toks, gw)
	search := authn.Middleware(f.toks, f.svc.SearchHandler(nil))
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, SearchPrefix):
			search.ServeHTTP(w, r)
		case strings.HasPrefix(r.URL.Path, "/api/"):
			rest.ServeHTTP(w, r)
		default:
			mux.ServeHTTP(w, r)
		}
	})
	f.srv = httptest.NewUnstartedServer(root)
	f.srv.EnableHTTP2 = true
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	f.client = queryv1connect.NewQueryServiceClient(f.srv.Client(), f.srv.URL)
	return f
}

func (f *fixture) write(rs ...store.Reading) {
	f.t.Helper()
	if err := f.st.Write(context.Background(), rs); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) reading(ts time.Time, v float64) store.Reading {
	return store.Reading{DeviceID: f.dev.ID, SensorID: f.sensor.ID, TimeNS: ts.UnixNano(), Value: store.Value{Kind: store.KindDouble, Double: v}}
}

func auth(ctx context.Context, tok string) context.Context {
	ctx, info := connect.NewClientContext(ctx)
	if tok != "" {
		info.RequestHeader().Set("Authorization", "Bearer "+tok)
	}
	return ctx
}

func (f *fixture) get(tok, path string) (int, map[string]any) {
	f.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer res.Body.Close()
	var out map[string]any
	raw, _ := io.ReadAll(res.Body)
	_ = json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

var t0 = time.Date(2026, 11, 28, 4, 0, 0, 0, time.UTC)

func TestAuthorization(t *testing.T) {
	f := newFixture(t)
	f.write(f.reading(t0, 1))
	ctx := context.Background()
	list := func(tok string, id int64) error {
		_, err := f.client.ListReadings(auth(ctx, tok), &queryv1.ListReadingsRequest{SensorId: id})
		return err
	}
	latest := func(tok string, id int64) error {
		_, err := f.client.Latest(auth(ctx, tok), &queryv1.LatestRequest{SensorId: []int64{id}})
		return err
	}
	tests := []struct {
		name string
		call func(string, int64) error
		tok  string
		id   int64
		want connect.Code // 0 = allowed
	}{
		{"owner reads own sensor", list, "alice", f.sensor.ID, 0},
		{"admin reads any sensor", list, "admin", f.other.ID, 0},
		{"admin gets not found for unknown sensor", list, "admin", 424242, connect.CodeNotFound},
		{"user cannot read another user's sensor", list, "bob", f.sensor.ID, connect.CodePermissionDenied},
		{"unknown sensor looks forbidden to users", list, "bob", 424242, connect.CodePermissionDenied},
		{"consumer reads granted sensor", list, "consumer", f.sensor.ID, 0},
		{"consumer cannot read ungranted sensor", list, "consumer", f.strSens.ID, connect.CodePermissionDenied},
		{"device cannot list readings", list, "device", f.sensor.ID, connect.CodePermissionDenied},
		{"device reads own latest", latest, "device", f.sensor.ID, 0},
		{"device cannot read other device's latest", latest, "bobdev", f.sensor.ID, connect.CodePermissionDenied},
		{"anonymous is unauthenticated", list, "", f.sensor.ID, connect.CodeUnauthenticated},
		{"anonymous latest is unauthenticated before validation", func(tok string, _ int64) error {
			_, err := f.client.Latest(auth(ctx, tok), &queryv1.LatestRequest{})
			return err
		}, "", 0, connect.CodeUnauthenticated},
		{"bad token is unauthenticated", list, "nope", f.sensor.ID, connect.CodeUnauthenticated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call(tc.tok, tc.id)
			if got := connect.CodeOf(err); (err == nil) != (tc.want == 0) || (err != nil && got != tc.want) {
				t.Errorf("err = %v, want code %v", err, tc.want)
			}
		})
	}
}

func TestConsumerRevocation_EffectiveAfterCacheTTL(t *testing.T) {
	f := newFixture(t)
	now := time.Now()
	f.svc.authz = newAuthorizerClock(f.svc.authz.reg, f.svc.cfg.AuthCacheTTL, func() time.Time { return now })
	ctx := context.Background()
	call := func() error {
		_, err := f.client.ListReadings(auth(ctx, "consumer"), &queryv1.ListReadingsRequest{SensorId: f.sensor.ID})
		return err
	}
	if err := call(); err != nil {
		t.Fatalf("granted: %v", err)
	}
	if err := f.reg.Revoke(ctx, f.cons.ID, f.sensor.ID); err != nil {
		t.Fatal(err)
	}
	now = now.Add(f.svc.cfg.AuthCacheTTL + time.Millisecond)
	if err := call(); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("after revocation and the cache bound: err = %v, want permission denied", err)
	}
}

func TestListReadings_PaginatesOverConnectAndREST(t *testing.T) {
	f := newFixture(t)
	for i := range 5 {
		f.write(f.reading(t0.Add(time.Duration(i)*time.Second+123456789), float64(i)))
	}
	ctx := context.Background()
	var got []float64
	tok := ""
	for range 10 {
		res, err := f.client.ListReadings(auth(ctx, "alice"), &queryv1.ListReadingsRequest{SensorId: f.sensor.ID, Limit: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range res.GetReadings() {
			got = append(got, r.GetDoubleValue())
		}
		if tok = res.GetNextPageToken(); tok == "" {
			break
		}
	}
	if fmt.Sprint(got) != "[0 1 2 3 4]" {
		t.Errorf("Connect pages = %v", got)
	}
	from := t0.Add(time.Second).UnixMilli()
	status, body := f.get("alice", fmt.Sprintf("/api/sensors/%d/readings?from=%d&to=%s&limit=10", f.sensor.ID, from, t0.Add(3*time.Second).Format(time.RFC3339)))
	if status != 200 {
		t.Fatalf("REST status %d %v", status, body)
	}
	rs := body["readings"].([]any)
	if len(rs) != 2 {
		t.Fatalf("REST readings = %v, want 2 (from ms inclusive, to RFC 3339 exclusive)", rs)
	}
	first := rs[0].(map[string]any)
	if first["timestamp"] != "2026-11-28T04:00:01.123456789Z" || first["double_value"] != 1.0 {
		t.Errorf("REST reading = %v, want RFC 3339 nano timestamp and typed double_value", first)
	}
	if status, _ := f.get("alice", fmt.Sprintf("/api/sensors/%d/readings?from=yesterday", f.sensor.ID)); status != 400 {
		t.Errorf("bad from: status %d, want 400", status)
	}
}

func TestAggregate_REST(t *testing.T) {
	f := newFixture(t)
	f.write(f.reading(t0, 1), f.reading(t0.Add(10*time.Second), 3), f.reading(t0.Add(2*time.Minute), 10))
	status, body := f.get("alice", fmt.Sprintf("/api/sensors/%d/aggregate?from=%s&to=%s&interval=1m&fn=avg&fn=max",
		f.sensor.ID, t0.Format(time.RFC3339), t0.Add(time.Hour).Format(time.RFC3339)))
	if status != 200 {
		t.Fatalf("status %d %v", status, body)
	}
	bs := body["buckets"].([]any)
	if len(bs) != 2 {
		t.Fatalf("buckets = %v, want 2", bs)
	}
	b := bs[0].(map[string]any)
	if b["avg"] != 2.0 || b["max"] != 3.0 || b["count"] != "2" || b["start"] != "2026-11-28T04:00:00Z" {
		t.Errorf("bucket = %v", b)
	}
	if _, ok := b["min"]; ok {
		t.Errorf("min not requested but present: %v", b)
	}
	tests := []struct{ name, query string }{
		{"too many buckets", "from=0&to=86400000&interval=1s"},
		{"interval below 1s", "from=0&to=1000&interval=500ms"},
		{"unknown fn", "from=0&interval=1m&fn=median"},
		{"missing from", "interval=1m"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if status, body := f.get("alice", fmt.Sprintf("/api/sensors/%d/aggregate?%s", f.sensor.ID, tc.query)); status != 400 {
				t.Errorf("status %d %v, want 400", status, body)
			}
		})
	}
	_, err := f.client.Aggregate(auth(context.Background(), "alice"), &queryv1.AggregateRequest{SensorId: f.strSens.ID, From: "0", Interval: "1m", Fn: []string{"avg"}})
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("avg of a string sensor: %v, want invalid argument", err)
	}
}

func TestLatest_REST(t *testing.T) {
	f := newFixture(t)
	f.write(f.reading(t0, 1), f.reading(t0.Add(time.Second), 2),
		store.Reading{DeviceID: f.dev.ID, SensorID: f.strSens.ID, TimeNS: t0.UnixNano(), Value: store.Value{Kind: store.KindString, Str: "on"}})
	status, body := f.get("alice", fmt.Sprintf("/api/sensors/latest?sensor_id=%d&sensor_id=%d", f.strSens.ID, f.sensor.ID))
	if status != 200 {
		t.Fatalf("status %d %v", status, body)
	}
	rs := body["readings"].([]any)
	if len(rs) != 2 || rs[0].(map[string]any)["string_value"] != "on" || rs[1].(map[string]any)["double_value"] != 2.0 {
		t.Errorf("latest = %v", rs)
	}
}

func TestSubscribe_BacklogThenLive(t *testing.T) {
	f := newFixture(t)
	f.write(f.reading(t0, 1), f.reading(t0.Add(time.Second), 2))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := f.client.Subscribe(auth(ctx, "consumer"), &queryv1.SubscribeRequest{SensorId: []int64{f.sensor.ID}, Since: t0.Add(time.Second).Format(time.RFC3339Nano)})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() || len(stream.Msg().GetReadings()) != 0 {
		t.Fatalf("first message should be the empty subscribed marker: %v", stream.Err())
	}
	var got []float64
	wrote := false
	for len(got) < 3 && stream.Receive() {
		for _, r := range stream.Msg().GetReadings() {
			got = append(got, r.GetDoubleValue())
		}
		if !wrote {
			wrote = true
			f.write(f.reading(t0.Add(2*time.Second), 3), f.reading(t0.Add(3*time.Second), 4))
		}
	}
	if fmt.Sprint(got) != "[2 3 4]" {
		t.Errorf("stream = %v (err %v), want backlog 2 then live 3 4", got, stream.Err())
	}
	// A live reading with an old timestamp (before since) is still new.
	f.write(f.reading(t0.Add(-time.Hour), 5))
	if !stream.Receive() || len(stream.Msg().GetReadings()) != 1 || stream.Msg().GetReadings()[0].GetDoubleValue() != 5 {
		t.Errorf("old-timestamped live reading not streamed: %v", stream.Err())
	}
}

func TestSubscribe_DeviceRefused(t *testing.T) {
	f := newFixture(t)
	stream, err := f.client.Subscribe(auth(context.Background(), "device"), &queryv1.SubscribeRequest{SensorId: []int64{f.sensor.ID}})
	if err == nil {
		stream.Receive()
		err = stream.Err()
	}
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("err = %v, want permission denied", err)
	}
}

func TestSearchProxy_EmbeddedAnswers501(t *testing.T) {
	f := newFixture(t)
	tests := []struct {
		tok  string
		id   int64
		want int
	}{
		{"", f.sensor.ID, 401},
		{"nope", f.sensor.ID, 401},
		{"consumer", f.strSens.ID, 403},
		{"consumer", f.sensor.ID, 501},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/consumers/consume/%d/_search", f.srv.URL, tc.id), strings.NewReader(`{"query":{"match_all":{}}}`))
		if tc.tok != "" {
			req.Header.Set("Authorization", "Bearer "+tc.tok)
		}
		res, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != tc.want {
			t.Errorf("token %q sensor %d: status %d %s, want %d", tc.tok, tc.id, res.StatusCode, raw, tc.want)
		}
	}
}

func TestListDeadLetters_OnlyOwnDevices(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	err := f.st.WriteDeadLetters(ctx, []deadletter.Letter{
		{DeviceID: f.dev.ID, SensorID: f.sensor.ID, Reason: "mine", TimeNS: 1},
		{DeviceID: f.other.DeviceID, SensorID: f.other.ID, Reason: "bobs", TimeNS: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tok  string
		want []string
		code connect.Code
	}{
		{"alice", []string{"mine"}, 0},
		{"admin", []string{"bobs", "mine"}, 0},
		{"consumer", nil, connect.CodePermissionDenied},
	}
	for _, tc := range tests {
		res, err := f.client.ListDeadLetters(auth(ctx, tc.tok), &queryv1.ListDeadLettersRequest{})
		if connect.CodeOf(err) != tc.code && !(err == nil && tc.code == 0) {
			t.Errorf("%s: err %v, want %v", tc.tok, err, tc.code)
			continue
		}
		var got []string
		for _, d := range res.GetDeadLetters() {
			got = append(got, d.GetReason())
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s: got %v, want %v", tc.tok, got, tc.want)
		}
	}
	_, err = f.client.ListDeadLetters(auth(ctx, "alice"), &queryv1.ListDeadLettersRequest{DeviceId: f.other.DeviceID})
	if connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Errorf("other's device: %v, want permission denied", err)
	}
}

func TestToConnect_MapsDomainErrors(t *testing.T) {
	tests := []struct {
		err  error
		want connect.Code
	}{
		{fmt.Errorf("x: %w", store.ErrInvalid), connect.CodeInvalidArgument},
		{fmt.Errorf("x: %w", store.ErrUnsupported), connect.CodeUnimplemented},
		{fmt.Errorf("x: %w", registry.ErrNotFound), connect.CodeNotFound},
		{context.Canceled, connect.CodeCanceled},
		{errors.New("disk on fire"), connect.CodeUnavailable},
	}
	for _, tc := range tests {
		if got := connect.CodeOf(toConnect(context.Background(), slog.New(slog.DiscardHandler), tc.err)); got != tc.want {
			t.Errorf("toConnect(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestSubscribe_PollModeSeesWritesOfOtherProcesses(t *testing.T) {
	f := newFixture(t)
	f.svc.cfg.PollInterval = 20 * time.Millisecond // a query process without the pipeline
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := f.client.Subscribe(auth(ctx, "alice"), &queryv1.SubscribeRequest{SensorId: []int64{f.sensor.ID}})
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	if !stream.Receive() {
		t.Fatal(stream.Err())
	}
	// Written "elsewhere": with a timestamp after the subscription started.
	now := time.Now()
	f.write(f.reading(now.Add(time.Second), 7), f.reading(now.Add(2*time.Second), 8))
	var got []float64
	for len(got) < 2 && stream.Receive() {
		for _, r := range stream.Msg().GetReadings() {
			got = append(got, r.GetDoubleValue())
		}
	}
	if fmt.Sprint(got) != "[7 8]" {
		t.Errorf("poll mode streamed %v (%v), want [7 8]", got, stream.Err())
	}
}
