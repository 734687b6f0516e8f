package e2e

import (
	"bufio"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	pahov3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// scrape returns the metric names /metrics of a running process exposes
// (histogram series with their _bucket/_sum/_count suffixes).
func scrape(t *testing.T, p *Platform) map[string]bool {
	t.Helper()
	resp, err := p.Client().Get(p.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	return names
}

// metricNames returns the metric names a PromQL expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Fatalf("PromQL %q: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

// exported runs the platform the way the dashboard is meant for (embedded
// defaults with traffic on every edge, a refused sign-in, a dead letter and a
// malformed batch) plus a TLS process, and returns the union of the metric
// names they expose.
func exported(t *testing.T) map[string]bool {
	p := Start(t, Options{})
	d := p.NewDevice(p.AdminToken(), "metrics", "double")
	pushAllEdges(t, p, d)
	if r := p.Do("POST", "/api/users/signin", "", map[string]string{"username": "root", "password": "wrong-password"}); r.Status != 401 && r.Status != 403 {
		t.Fatalf("wrong password answered %d", r.Status)
	}
	if s := postReading(t, p, d.Token, "application/json", []byte(`{not json`)); s != 400 {
		t.Fatalf("malformed batch answered %d", s)
	}
	// An MQTT 3.1.1 payload that cannot be refused is dead-lettered.
	o := pahov3.NewClientOptions().AddBroker("tcp://" + p.MQTT).SetClientID("metrics-dl").SetUsername("JWT").SetPassword(d.Token).SetProtocolVersion(4).SetAutoReconnect(false)
	mc := pahov3.NewClient(o)
	if tk := mc.Connect(); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt connect: %v", tk.Error())
	}
	if tk := mc.Publish(d.ID, 1, false, `{"sensor_id":"`+d.SensorID+`","value":"not a number"}`); !tk.WaitTimeout(10*time.Second) || tk.Error() != nil {
		t.Fatalf("mqtt publish: %v", tk.Error())
	}
	mc.Disconnect(100)
	names := scrape(t, p)
	for n := range scrape(t, startTLS(t, false).Platform) {
		names[n] = true
	}
	return names
}

// TestObservability_DashboardAndAlertRulesQueryExportedMetrics: the Grafana
// dashboard and the Prometheus alert rules under deploy/observability parse
// (the rules with Prometheus' own rule-file parser, what `promtool check
// rules` runs, and every expression with its PromQL parser), and every
// metric they query is exported by a running binary.
func TestObservability_DashboardAndAlertRulesQueryExportedMetrics(t *testing.T) {
	dir := filepath.Join("..", "deploy", "observability")
	b, err := os.ReadFile(filepath.Join(dir, "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" {
		t.Fatal("dashboard without title or uid")
	}
	queried := map[string][]string{} // metric → where
	grafana := strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*")
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range metricNames(t, grafana.Replace(tg.Expr)) {
				queried[n] = append(queried[n], "dashboard panel "+p.Title)
			}
		}
	}
	groups, errs := rulefmt.ParseFile(filepath.Join(dir, "prometheus-rules.yaml"), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("alert rules: %v", errs)
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Labels["severity"] == "" || r.Annotations["summary"] == "" {
				t.Errorf("rule %q in %s: want an alert name, a severity label and a summary", r.Alert, g.Name)
			}
			alerts = append(alerts, r.Alert)
			for _, n := range metricNames(t, r.Expr) {
				queried[n] = append(queried[n], "alert "+r.Alert)
			}
		}
	}
	// The operator's questions each have a rule.
	for _, want := range []string{"IotIngestUnavailable", "IotBusLagGrowing", "IotNotReady", "IotDataVolumeFilling", "IotCertificateExpiresSoon"} {
		if !slices.Contains(alerts, want) {
			t.Errorf("no alert rule %s", want)
		}
	}
	names := exported(t)
	for _, must := range []string{"iot_devices_connected", "iot_bus_lag_records", "iot_pipeline_apply_lag_seconds_bucket", "iot_store_write_seconds_bucket",
		"iot_pipeline_dead_letters_total", "iot_signin_failures_total", "iot_ingest_rate_limited_total", "iot_tls_certificate_expiry_timestamp_seconds"} {
		if len(queried[must]) == 0 {
			t.Errorf("the dashboard and rules never query %s", must)
		}
	}
	for n, where := range queried {
		if !names[n] {
			t.Errorf("%s (queried by %v) is not exported by the binary", n, where)
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if strings.HasPrefix(base, "iot_") && !strings.Contains(string(doc), "`"+base+"`") {
			t.Errorf("docs/OPERATIONS.md does not explain %s: add it to a metric table there (name, type, labels, meaning)", base)
		}
	}
}
