package e2e

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"connectrpc.com/connect"
	_ "github.com/jackc/pgx/v5/stdlib"
	"google.golang.org/genproto/googleapis/rpc/errdetails"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// importBody is an ImportDevices REST body: n devices "<prefix>-i" with
// external ids and one double sensor each.
func importBody(prefix string, n int, keys bool) map[string]any {
	devs := make([]map[string]any, n)
	for i := range devs {
		devs[i] = map[string]any{
			"external_id": fmt.Sprintf("%s-ext-%d", prefix, i), "name": fmt.Sprintf("%s-%d", prefix, i),
			"labels":  map[string]string{"site": "plant-7"},
			"sensors": []map[string]any{{"name": "temp", "value_type": "VALUE_TYPE_DOUBLE", "unit": "C", "path": "env"}},
		}
	}
	return map[string]any{"devices": devs, "return_keys": keys}
}

func results(t *testing.T, r Response) []map[string]any {
	t.Helper()
	raw, _ := r.JSON["results"].([]any)
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i] = x.(map[string]any)
	}
	return out
}

// postgresPlatform starts the binary with its registry in a fresh
// PostgreSQL database.
func postgresPlatform(t *testing.T) *Platform {
	dsn := testenv.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	name := "e2e_import_" + randHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	base, params, _ := strings.Cut(dsn, "?")
	dbDSN := base[:strings.LastIndex(base, "/")+1] + name
	if params != "" {
		dbDSN += "?" + params
	}
	p := Start(t, Options{Env: []string{"IOT_POSTGRES_DSN=" + dbDSN}})
	t.Cleanup(func() { admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	return p
}

func TestImport_RESTAllOrNothingIdempotentKeysOnEveryEdge(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testImportREST(t, Start(t, Options{})) })
	t.Run("postgres", func(t *testing.T) { testImportREST(t, postgresPlatform(t)) })
}

func testImportREST(t *testing.T, p *Platform) {
	tok := p.AdminToken()
	count := func() int {
		r := p.Do("GET", "/api/devices?page_size=1000", tok, nil)
		raw, _ := r.JSON["result"].([]any)
		return len(raw)
	}
	// A bad row refuses the whole batch, naming the row and the reason.
	bad := importBody("bad", 5, false)
	bad["devices"].([]map[string]any)[3]["sensors"] = []map[string]any{{"name": "temp"}}
	r := p.Do("POST", "/api/devices/import", tok, bad)
	if r.Status != 400 || r.Str("code") != "invalid_argument" || !strings.Contains(r.Str("message"), "devices[3].sensors[0].value_type") ||
		!strings.Contains(r.Str("details"), `"field":"devices[3].sensors[0].value_type"`) {
		t.Fatalf("bad row: %d %s", r.Status, r.Body)
	}
	p.Do("POST", "/api/devices/", tok, map[string]string{"name": "taken-2"})
	r = p.Do("POST", "/api/devices/import", tok, importBody("taken", 4, false))
	if r.Status != 400 || !strings.Contains(r.Str("message"), "devices[2].name") || !strings.Contains(r.Str("message"), "already exists") {
		t.Fatalf("taken name: %d %s", r.Status, r.Body)
	}
	if n := count(); n != 1 {
		t.Fatalf("refused batches left %d devices, want 1", n)
	}
	// The import creates every device with its sensor and returns keys.
	r = p.Do("POST", "/api/devices/import", tok, importBody("fleet", 20, true))
	first := results(t, r)
	if r.Status != 200 || r.Str("created") != "20" || len(first) != 20 {
		t.Fatalf("import: %d %.500s", r.Status, r.Body)
	}
	// A retry creates nothing and returns the same ids.
	r = p.Do("POST", "/api/devices/import", tok, importBody("fleet", 20, false))
	again := results(t, r)
	if r.Status != 200 || r.Str("created") != "0" || len(again) != 20 {
		t.Fatalf("retry: %d %.500s", r.Status, r.Body)
	}
	for i := range first {
		if first[i]["id"] != again[i]["id"] || toJSON(first[i]["sensor_ids"]) != toJSON(again[i]["sensor_ids"]) || again[i]["created"] != false {
			t.Fatalf("retry row %d = %v, first import %v", i, again[i], first[i])
		}
	}
	if n := count(); n != 21 {
		t.Fatalf("after a retry there are %d devices, want 21", n)
	}
	tree := p.Do("GET", "/api/devices/"+first[7]["id"].(string)+"/tree", tok, nil)
	if !strings.Contains(string(tree.Body), `"env/temp"`) {
		t.Fatalf("imported device tree: %s", tree.Body)
	}
	// The returned key works at once on every edge.
	d := Device{ID: first[7]["id"].(string), SensorID: first[7]["sensor_ids"].([]any)[0].(string), Token: first[7]["key"].(string)}
	pushAllEdges(t, p, d)
	if rs := waitReadings(t, p, tok, d.SensorID, 7); len(rs) != 7 {
		t.Fatalf("imported device's readings: %d of 7 stored", len(rs))
	}
}

// TestImport_Iotctl imports a CSV file twice with the CLI (the second run
// creates nothing) and reports a refused row by its line.
func TestImport_Iotctl(t *testing.T) {
	p := Start(t, Options{})
	tok := p.AdminToken()
	dir := t.TempDir()
	csvFile := filepath.Join(dir, "fleet.csv")
	os.WriteFile(csvFile, []byte("external_id,name,labels,sensor,type,unit,path\n"+
		"inv-1,pump-1,site=north,pressure,double,bar,hydraulics\n"+
		"inv-1,pump-1,site=north,running,boolean,,\n"+
		"inv-2,pump-2,site=south,pressure,double,bar,hydraulics\n"+
		"inv-3,pump-3,,pressure,double,bar,hydraulics\n"), 0o600)
	ctl := func(args ...string) (string, error) {
		cmd := exec.Command(iotctl, args...)
		cmd.Env = append(os.Environ(), "IOT_API="+p.URL(), "IOT_TOKEN="+tok)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	type imported struct {
		Created int `json:"created"`
		Results []struct {
			ID        string   `json:"id"`
			Created   bool     `json:"created"`
			SensorIDs []string `json:"sensor_ids"`
			Key       string   `json:"key"`
		} `json:"results"`
	}
	parse := func(out string) imported {
		var v imported
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("iotctl printed no JSON: %v\n%s", err, out)
		}
		return v
	}
	out, err := ctl("devices", "import", "--keys", csvFile)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	first := parse(out)
	if first.Created != 3 || len(first.Results) != 3 || len(first.Results[0].SensorIDs) != 2 || first.Results[2].Key == "" {
		t.Fatalf("import: %s", out)
	}
	out, err = ctl("devices", "import", csvFile)
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	again := parse(out)
	if again.Created != 0 || len(again.Results) != 3 {
		t.Fatalf("second import: %s", out)
	}
	for i := range first.Results {
		if a, b := first.Results[i], again.Results[i]; a.ID != b.ID || toJSON(a.SensorIDs) != toJSON(b.SensorIDs) || b.Created {
			t.Fatalf("second import row %d = %+v, first %+v", i, b, a)
		}
	}
	tree := p.Do("GET", "/api/devices/", tok, nil)
	if strings.Count(string(tree.Body), `"pump-`) != 3 {
		t.Fatalf("devices after two imports: %s", tree.Body)
	}
	// JSON input; a name taken by the second device refuses the batch and
	// names the device; in CSV the line.
	jsonFile := filepath.Join(dir, "more.json")
	os.WriteFile(jsonFile, []byte(`[{"external_id":"inv-9","name":"pump-9"},{"external_id":"inv-10","name":"pump-1"}]`), 0o600)
	out, err = ctl("devices", "import", jsonFile)
	if err == nil || !strings.Contains(out, "device 2: name") || !strings.Contains(out, "already exists") {
		t.Fatalf("import with a taken name: %v\n%s", err, out)
	}
	if r := p.Do("GET", "/api/devices/?name_filter=pump-9", tok, nil); strings.Contains(string(r.Body), "pump-9") {
		t.Fatalf("refused batch left pump-9 behind: %s", r.Body)
	}
	os.WriteFile(csvFile, []byte("external_id,name,sensor,type\ninv-20,pump-20,t,double\ninv-21,pump-2,t,double\n"), 0o600)
	if out, err = ctl("devices", "import", csvFile); err == nil || !strings.Contains(out, "line 3: name") {
		t.Fatalf("CSV import with a taken name: %v\n%s", err, out)
	}
}

// TestImport_RPCProtocols imports over Connect, gRPC and gRPC-Web with the
// Go SDK: the refused row arrives as a BadRequest detail, and a device key
// may not import.
func TestImport_RPCProtocols(t *testing.T) {
	p := Start(t, Options{})
	ctx := context.Background()
	tok := p.AdminToken()
	for _, proto := range protocols {
		t.Run(proto.name, func(t *testing.T) {
			c := coreClient(p, tok, proto.opts)
			req := &corev1.ImportDevicesRequest{ReturnKeys: true, Devices: []*corev1.DeviceImport{
				{ExternalId: proto.name + "-a", Name: proto.name + "-a", Sensors: []*corev1.SensorImport{{Name: "t", ValueType: corev1.ValueType_VALUE_TYPE_DOUBLE}}},
				{ExternalId: proto.name + "-b", Name: "", Sensors: nil},
			}}
			_, err := c.ImportDevices(ctx, req)
			var ce *connect.Error
			if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || len(ce.Details()) != 1 {
				t.Fatalf("bad row: %v", err)
			}
			v, derr := ce.Details()[0].Value()
			br, ok := v.(*errdetails.BadRequest)
			if derr != nil || !ok || br.GetFieldViolations()[0].GetField() != "devices[1].name" {
				t.Fatalf("detail = %v %v", v, derr)
			}
			req.Devices[1].Name = proto.name + "-b"
			res, err := c.ImportDevices(ctx, req)
			if err != nil || res.GetCreated() != 2 || res.GetResults()[0].GetKey() == "" || len(res.GetResults()[0].GetSensorIds()) != 1 {
				t.Fatalf("import: %v %v", res, err)
			}
			dev := coreClient(p, res.GetResults()[0].GetKey(), proto.opts)
			if _, err := dev.ImportDevices(ctx, req); code(err) != connect.CodePermissionDenied {
				t.Fatalf("device key importing: %v", err)
			}
		})
	}
}

// TestDocsCore_BulkProvisioningRunsAsWritten runs the bash block of the
// "Bulk provisioning" section of docs/CORE.md against the built binary,
// with iotctl on PATH and the address rewritten to the test's.
func TestDocsCore_BulkProvisioningRunsAsWritten(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "CORE.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	i := strings.Index(section, "## Bulk provisioning")
	if i < 0 {
		t.Fatal("docs/CORE.md has no Bulk provisioning section")
	}
	section = section[i:]
	a := strings.Index(section, "```bash\n")
	b := strings.Index(section[a+8:], "```")
	if a < 0 || b < 0 {
		t.Fatal("no bash block in the Bulk provisioning section")
	}
	p := Start(t, Options{})
	script := strings.ReplaceAll("set -euo pipefail\n"+section[a+8:a+8+b], "http://localhost:8080", p.URL())
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(iotctl)+":"+os.Getenv("PATH"), "IOT_API="+p.URL(), "IOT_TOKEN="+p.AdminToken())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("docs script failed: %v\n%s", err, out)
	}
	// protojson varies its spacing: compare without blanks.
	flat := strings.Join(strings.Fields(string(out)), "")
	for _, want := range []string{`"created":2}`, `"external_id":"inv-1002"`, `"created":1}`, `"external_id":"inv-1003"`} {
		if !strings.Contains(flat, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
	if n := strings.Count(flat, `"created":true`); n != 3 {
		t.Errorf("%d rows created, want 3 (2 by the first iotctl run, none by the re-run, 1 by curl):\n%s", n, out)
	}
}
