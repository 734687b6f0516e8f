package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runCtl(t *testing.T, p *Platform, token string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(iotctl, args...)
	cmd.Env = append(os.Environ(), "IOT_API="+p.URL(), "IOT_TOKEN="+token, "IOT_HTTP_URL=http://"+p.HTTP+"/", "IOT_PROFILE=", "IOT_OUTPUT=", "XDG_CONFIG_HOME="+t.TempDir())
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("iotctl %v: %v\n%s%s", args, err, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// TestExportBackfill_RoundTripIsEqualAndIdempotent: a device's readings
// (doubles with nanosecond timestamps, strings with commas and quotes) are
// exported as CSV and NDJSON with iotctl, backfilled into a fresh platform
// through the ingest gateway with progress, and exported again: the files
// are equal; backfilling again (CSV, then NDJSON) stores nothing twice.
func TestExportBackfill_RoundTripIsEqualAndIdempotent(t *testing.T) {
	src, dst := Start(t, Options{}), Start(t, Options{})
	sa, da := src.AdminToken(), dst.AdminToken()
	ds := src.NewDevice(sa, "xfer", "double")
	dd := dst.NewDevice(da, "xfer", "double")
	if ds.SensorID != dd.SensorID {
		t.Fatalf("fresh platforms gave sensor ids %s and %s", ds.SensorID, dd.SensorID)
	}
	// A string sensor beside the double one, on both.
	addString := func(p *Platform, tok, dev string) string {
		r := p.Do("POST", "/api/devices/"+dev+"/sensors", tok, map[string]string{"name": "note", "mapping": `{"type":"string"}`})
		if r.Status != 200 {
			t.Fatalf("sensor: %d %s", r.Status, r.Body)
		}
		return r.Str("id")
	}
	strS, strD := addString(src, sa, ds.ID), addString(dst, da, dd.ID)
	if strS != strD {
		t.Fatal("string sensor ids differ")
	}
	base := time.Date(2025, 3, 1, 0, 0, 0, 123456789, time.UTC)
	var items []string
	for i := range 2500 {
		ts := base.Add(time.Duration(i) * time.Second).Format(time.RFC3339Nano)
		items = append(items, fmt.Sprintf(`{"sensor_id":%s,"timestamp":"%s","value":%g}`, ds.SensorID, ts, float64(i)*0.1))
	}
	for i, v := range []string{`"plain"`, `"with, comma"`, `"say \"hi\""`, `"ünïcode"`} {
		items = append(items, fmt.Sprintf(`{"sensor_id":%s,"timestamp":"%s","value":%s}`, strS, base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339Nano), v))
	}
	if s, body := postJSON(t, src, ds.Token, "["+strings.Join(items, ",")+"]"); s != 200 {
		t.Fatalf("ingest: %d %s", s, body)
	}
	dir := t.TempDir()
	csvFile, ndFile := filepath.Join(dir, "d.csv"), filepath.Join(dir, "d.ndjson")
	runCtl(t, src, sa, "export", "--device", ds.ID, "-f", csvFile)
	runCtl(t, src, sa, "export", "--device", ds.ID, "--format", "ndjson", "-f", ndFile)
	want, _ := os.ReadFile(csvFile)
	if lines := strings.Count(string(want), "\n"); lines != 2505 {
		t.Fatalf("csv has %d lines, want header + 2504:\n%s", lines, tail(string(want), 5))
	}
	out, progress := runCtl(t, dst, da, "backfill", dd.ID, csvFile, "--batch", "1000")
	if !strings.Contains(out, `"readings":2504`) || !strings.Contains(progress, "2504/2504 readings (100%) stored") {
		t.Fatalf("backfill: %s\n%s", out, progress)
	}
	got, _ := runCtl(t, dst, da, "export", "--device", dd.ID)
	if got != string(want) {
		t.Fatalf("round trip differs:\nwant %s\ngot  %s", tail(string(want), 3), tail(got, 3))
	}
	runCtl(t, dst, da, "backfill", dd.ID, csvFile, "--batch", "1000")
	runCtl(t, dst, da, "backfill", dd.ID, ndFile, "--batch", "1000")
	got, _ = runCtl(t, dst, da, "export", "--device", dd.ID)
	if got != string(want) {
		t.Fatalf("re-import duplicated or changed readings: %d bytes, want %d", len(got), len(want))
	}
	gotND, _ := runCtl(t, dst, da, "export", "--device", dd.ID, "--format", "ndjson")
	if wantND, _ := os.ReadFile(ndFile); gotND != string(wantND) {
		t.Fatal("NDJSON round trip differs")
	}
	// Bad input is refused with the gateway's reason; another user cannot export.
	bad := filepath.Join(dir, "bad.csv")
	os.WriteFile(bad, []byte("sensor_id,timestamp,value\n"+ds.SensorID+",2025-03-01T00:00:00Z,\"not a number\"\n"), 0o600)
	cmd := exec.Command(iotctl, "backfill", dd.ID, bad)
	cmd.Env = append(os.Environ(), "IOT_API="+dst.URL(), "IOT_TOKEN="+da, "IOT_HTTP_URL=http://"+dst.HTTP+"/", "XDG_CONFIG_HOME="+t.TempDir())
	if b, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(b), "invalid_value") {
		t.Fatalf("bad value accepted: %v %s", err, b)
	}
	if r := src.Do("GET", "/api/export/sensors/"+ds.SensorID, ds.Token, nil); r.Status != 403 && r.Status != 404 {
		t.Fatalf("export with a device token: %d %s", r.Status, r.Body)
	}
}
