package e2e

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/telemetry/otlptest"
)

// TestFunction_TracesWhatItServes: `iotplatform function` honours the same
// OTLP flags and variables as `serve` (here --otlp-endpoint over
// http/protobuf for a Knative function, IOT_OTLP_ENDPOINT over gRPC for an
// OpenWhisk action): its Connect and REST calls are RPC spans named by
// procedure, an OpenWhisk activation is a "POST openwhisk" span with the
// procedure under it, and the spans name the function in their resource.
func TestFunction_TracesWhatItServes(t *testing.T) {
	rcv := otlptest.Start(t)
	dsn := freshPostgres(t)
	keys := filepath.Join(t.TempDir(), "keys")
	full := Start(t, Options{Args: []string{"--postgres-dsn", dsn, "--keys-dir", keys}})
	admin := full.AdminToken()
	dev := full.NewDevice(admin, "fn-traced", "double")

	kn := startFunction(t, "fn-traced-knative", []string{"--procedures", "GetDevice", "--postgres-dsn", dsn, "--keys-dir", keys,
		"--otlp-endpoint", rcv.HTTPURL, "--trace-sample-ratio", "1"}, nil)
	if st, b := connectCall(t, kn.API, "GetDevice", admin, map[string]string{"id": dev.ID}); st != 200 {
		t.Fatalf("Connect GetDevice on the function: %d %s", st, b)
	}
	if r := kn.Do("GET", "/api/devices/"+dev.ID, admin, nil); r.Status != 200 {
		t.Fatalf("REST GetDevice on the function: %d %s", r.Status, r.Body)
	}

	addr := freeAddrs(t, 1)[0]
	startProc(t, "fn-traced-openwhisk", binary, []string{"function", "--contract", "openwhisk", "--addr", addr, "--log-format", "text",
		"--procedures", "GetDevice", "--postgres-dsn", dsn, "--keys-dir", keys},
		[]string{"IOT_OTLP_ENDPOINT=http://" + rcv.GRPCAddr, "IOT_OTLP_PROTOCOL=grpc", "IOT_TRACE_SAMPLE_RATIO=1"}, "http://"+addr+"/healthz")
	if _, res := owRun(t, addr, map[string]any{"__ow_method": "get", "__ow_path": "/api/devices/" + dev.ID,
		"__ow_headers": map[string]string{"authorization": "Bearer " + admin}}); res.StatusCode != 200 {
		t.Fatalf("GetDevice through /run: %+v", res)
	}

	byContract := func(spans []otlptest.Span, contract, name string) []otlptest.Span {
		var out []otlptest.Span
		for _, s := range otlptest.Find(spans, name) {
			if s.Resource["iot.roles"] == "function" && s.Resource["iot.function.contract"] == contract && s.Resource["iot.function.procedures"] == "GetDevice" {
				out = append(out, s)
			}
		}
		return out
	}
	const connectSpan, restSpan = "iot.core.v1.CoreService/GetDevice", "/iot.core.v1.CoreService/GetDevice"
	spans, ok := rcv.WaitFor(30*time.Second, func(s []otlptest.Span) bool {
		return len(byContract(s, "http", connectSpan)) == 1 && len(byContract(s, "http", restSpan)) == 1 &&
			len(byContract(s, "openwhisk", restSpan)) == 1 && len(byContract(s, "openwhisk", "POST openwhisk")) == 1
	})
	if !ok {
		var b strings.Builder
		for _, s := range spans {
			fmt.Fprintf(&b, "%s parent=%s %q %v\n", s.TraceID, s.ParentID, s.Name, s.Resource)
		}
		t.Fatalf("want one Connect and one REST GetDevice span from the Knative function and a POST openwhisk > GetDevice from the action; got:\n%s", b.String())
	}
	ow := byContract(spans, "openwhisk", restSpan)[0]
	if path, ok := otlptest.Path(rcv.Trace(ow.TraceID), ow); !ok || path != "POST openwhisk > "+restSpan {
		t.Errorf("OpenWhisk activation trace %q (connected %v), want %q", path, ok, "POST openwhisk > "+restSpan)
	}
	if rs := byContract(spans, "http", restSpan)[0]; rs.Attrs["http.response.status_code"] != fmt.Sprint(http.StatusOK) {
		t.Errorf("REST span attributes %v, want status 200", rs.Attrs)
	}
}
