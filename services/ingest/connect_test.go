package ingest_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"connectrpc.com/connect"

	ingestv1 "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	"github.com/iotplatform/iotplatform/gen/iot/ingest/v1/ingestv1connect"
	"github.com/iotplatform/iotplatform/internal/authn"
	"github.com/iotplatform/iotplatform/services/ingest"
	"github.com/iotplatform/iotplatform/services/ingest/ingesttest"
)

func connectClient(t *testing.T, e *ingesttest.Env, token string, grpc bool) ingestv1connect.IngestServiceClient {
	mux := http.NewServeMux()
	mux.Handle(ingestv1connect.NewIngestServiceHandler(ingest.NewHandler(e.Service, 4), connect.WithInterceptors(authn.NewInterceptor(e.Verifier))))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	opts := []connect.ClientOption{connect.WithInterceptors(bearer(token))}
	if grpc {
		opts = append(opts, connect.WithGRPC())
	}
	return ingestv1connect.NewIngestServiceClient(srv.Client(), srv.URL, opts...)
}

type bearer string

func (b bearer) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		req.Header().Set("Authorization", "Bearer "+string(b))
		return next(ctx, req)
	}
}
func (b bearer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, s connect.Spec) connect.StreamingClientConn {
		c := next(ctx, s)
		c.RequestHeader().Set("Authorization", "Bearer "+string(b))
		return c
	}
}
func (b bearer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

func reading(sensor int64, v float64) *ingestv1.Reading {
	return &ingestv1.Reading{SensorId: sensor, Value: &ingestv1.Reading_DoubleValue{DoubleValue: v}}
}

func TestIngestService_Unary(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	for _, grpc := range []bool{false, true} {
		c := connectClient(t, e, e.DeviceToken(t, ingesttest.DeviceA), grpc)
		cases := []struct {
			name string
			rs   []*ingestv1.Reading
			code connect.Code
		}{
			{"ok", []*ingestv1.Reading{reading(11, 1), reading(12, 2)}, 0},
			{"other device's sensor", []*ingestv1.Reading{reading(21, 1)}, connect.CodeInvalidArgument},
			{"empty", nil, connect.CodeInvalidArgument},
		}
		for _, tc := range cases {
			resp, err := c.Ingest(context.Background(), &ingestv1.IngestRequest{Readings: tc.rs})
			if tc.code == 0 {
				if err != nil || resp.GetAccepted() != int32(len(tc.rs)) {
					t.Fatalf("%s: %v %v", tc.name, resp, err)
				}
				continue
			}
			if connect.CodeOf(err) != tc.code {
				t.Fatalf("%s: err %v, want %v", tc.name, err, tc.code)
			}
		}
	}
	userClient := connectClient(t, e, e.Token(t, authn.KindUser, 1), false)
	if _, err := userClient.Ingest(context.Background(), &ingestv1.IngestRequest{Readings: []*ingestv1.Reading{reading(11, 1)}}); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("user token: %v", err)
	}
}

func TestIngestService_StreamAcksInOrder(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{})
	c := connectClient(t, e, e.DeviceToken(t, ingesttest.DeviceA), true)
	s, err := c.IngestStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	go func() {
		for i := uint64(1); i <= n; i++ {
			rs := []*ingestv1.Reading{reading(11, float64(i)), reading(12, float64(i))}
			if i == 7 {
				rs = []*ingestv1.Reading{reading(21, 1)} // refused, the stream goes on
			}
			if err := s.Send(&ingestv1.IngestStreamRequest{Sequence: i, Readings: rs}); err != nil {
				return
			}
		}
		_ = s.CloseRequest()
	}()
	for i := uint64(1); i <= n; i++ {
		resp, err := s.Receive()
		if err != nil {
			t.Fatalf("receive %d: %v", i, err)
		}
		if resp.GetSequence() != i {
			t.Fatalf("ack %d, want %d (order)", resp.GetSequence(), i)
		}
		if i == 7 {
			if len(resp.GetErrors()) == 0 || resp.GetErrors()[0].GetCode() != ingest.CodeUnknownSensor {
				t.Fatalf("refused batch ack %v", resp)
			}
			continue
		}
		if resp.GetAccepted() != 2 {
			t.Fatalf("ack %v", resp)
		}
	}
	if _, err := s.Receive(); err == nil {
		t.Fatal("stream not closed")
	}
	if got := len(e.Sink.Records()); got != 2*(n-1) {
		t.Fatalf("%d durable, want %d", got, 2*(n-1))
	}
}

func TestIngestService_StreamUnavailableFrame(t *testing.T) {
	e := ingesttest.New(t, ingesttest.Options{PublishTimeout: 100 * time.Millisecond})
	c := connectClient(t, e, e.DeviceToken(t, ingesttest.DeviceA), false)
	unblock := e.Sink.Block()
	defer unblock()
	s, err := c.IngestStream(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err = s.Send(&ingestv1.IngestStreamRequest{Sequence: 1, Readings: []*ingestv1.Reading{reading(11, 1)}}); err != nil {
		t.Fatal(err)
	}
	resp, err := s.Receive()
	if err != nil || resp.GetAccepted() != 0 || len(resp.GetErrors()) == 0 || resp.GetErrors()[0].GetCode() != ingest.CodeUnavailable {
		t.Fatalf("resp %v err %v", resp, err)
	}
	_ = s.CloseRequest()
}
