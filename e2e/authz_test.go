package e2e

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	_ "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	_ "github.com/iotplatform/iotplatform/gen/iot/ingest/v1"
	_ "github.com/iotplatform/iotplatform/gen/iot/query/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

// publicRPCs may be called without a token.
var publicRPCs = map[string]bool{"/iot.core.v1.CoreService/SignIn": true}

// TestEveryRPCRequiresAToken walks every method of every iot.* service in
// the compiled descriptors, so an RPC added later without an authorisation
// check fails here.
func TestEveryRPCRequiresAToken(t *testing.T) {
	p := Start(t, Options{})
	n := 0
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if !strings.HasPrefix(string(fd.Package()), "iot.") {
			return true
		}
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				m := svc.Methods().Get(j)
				proc := "/" + string(svc.FullName()) + "/" + string(m.Name())
				if publicRPCs[proc] {
					continue
				}
				n++
				t.Run(proc, func(t *testing.T) {
					ct := "application/json"
					if m.IsStreamingClient() || m.IsStreamingServer() {
						ct = "application/connect+json"
					}
					body := []byte("{}")
					if ct != "application/json" {
						body = append([]byte{0, 0, 0, 0, 2}, body...) // one enveloped message
					}
					client := http.DefaultClient
					if m.IsStreamingClient() && m.IsStreamingServer() {
						client = iot.H2C() // bidi streams need HTTP/2 (HTTP/1.1 gets 505 before any interceptor)
					}
					resp, err := client.Post(p.URL()+proc, ct, bytes.NewReader(body))
					if err != nil {
						t.Fatal(err)
					}
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if !strings.Contains(string(b), `"unauthenticated"`) {
						t.Fatalf("%s without a token answered %d %s", proc, resp.StatusCode, b)
					}
				})
			}
		}
		return true
	})
	if n < 30 {
		t.Fatalf("only %d RPCs checked; descriptors not loaded?", n)
	}
}

// TestMalformedProtobufIsInvalidArgument sends bytes that are not a message.
func TestMalformedProtobufIsInvalidArgument(t *testing.T) {
	p := Start(t, Options{})
	resp, err := http.Post(p.URL()+"/iot.core.v1.CoreService/SignIn", "application/proto", bytes.NewReader([]byte{0xff, 0xff, 0xff}))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(b), "invalid_argument") {
		t.Fatalf("got %d %s", resp.StatusCode, b)
	}
}
