package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	rulesv1 "github.com/iotplatform/iotplatform/gen/iot/rules/v1"
	"github.com/iotplatform/iotplatform/internal/testenv"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
	"github.com/iotplatform/iotplatform/services/rules"
)

// hookReceiver is a webhook endpoint that refuses the first `fail` attempts
// of every delivery and records the verified events it accepted.
type hookReceiver struct {
	srv    *httptest.Server
	secret string
	fail   int
	mu     sync.Mutex
	tries  map[string]int // delivery id -> attempts seen
	got    []rules.Payload
	bad    []string
	at     []time.Time
}

func newHookReceiver(t *testing.T, secret string, fail int) *hookReceiver {
	h := &hookReceiver{secret: secret, fail: fail, tries: map[string]int{}}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		ts, _ := strconv.ParseInt(r.Header.Get(rules.SignatureTimestampHeader), 10, 64)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !rules.Verify(h.secret, ts, body, r.Header.Get(rules.SignatureHeader)) {
			h.bad = append(h.bad, "bad signature: "+string(body))
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := r.Header.Get(rules.DeliveryHeader)
		h.tries[id]++
		if h.tries[id] <= h.fail {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var p rules.Payload
		if err := json.Unmarshal(body, &p); err != nil {
			h.bad = append(h.bad, "bad body: "+string(body))
		}
		h.got = append(h.got, p)
		h.at = append(h.at, time.Now())
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) events() []rules.Payload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]rules.Payload(nil), h.got...)
}

// alertsOf lists the alerts of a rule through REST.
func alertsOf(t *testing.T, p *Platform, token, ruleID string) []map[string]any {
	t.Helper()
	r := p.Do("GET", "/api/alerts?rule_id="+ruleID+"&page_size=1000", token, nil)
	if r.Status != 200 {
		t.Fatalf("list alerts: %d %s", r.Status, r.Body)
	}
	var out []map[string]any
	for _, a := range r.JSON["result"].([]any) {
		out = append(out, a.(map[string]any))
	}
	return out
}

func createRule(t *testing.T, p *Platform, token string, body map[string]any) string {
	t.Helper()
	r := p.Do("POST", "/api/rules", token, body)
	if r.Status != 200 {
		t.Fatalf("create rule: %d %s", r.Status, r.Body)
	}
	return r.Str("result.id")
}

// TestRules_EmbeddedThresholdAlertWebhookRetriedSignedAcknowledged: on the
// embedded stack (WAL bus, SQLite store) a threshold rule fires and resolves
// on the crossing readings, the webhook receiver that refuses the first two
// attempts gets both events signed, every attempt is listed on the alert,
// WatchAlerts streams the events, and a person acknowledges the alert.
func TestRules_EmbeddedThresholdAlertWebhookRetriedSignedAcknowledged(t *testing.T) {
	p := Start(t, Options{Args: []string{"--webhook-backoff", "200ms", "--webhook-allow-nets", "127.0.0.1"}})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "fridge", "double")
	hook := newHookReceiver(t, "e2e-secret", 2)
	ruleID := createRule(t, p, admin, map[string]any{
		"name": "too warm", "sensor_id": d.SensorID,
		"threshold":   map[string]any{"op": "OP_ABOVE", "high": 10},
		"webhook_url": hook.srv.URL + "/hook", "webhook_secret": "e2e-secret",
	})
	if r := p.Do("GET", "/api/rules/"+ruleID, admin, nil); r.Status != 200 || r.Str("result.threshold.op") != "OP_ABOVE" || r.Str("result.has_webhook_secret") != "true" || strings.Contains(string(r.Body), "e2e-secret") {
		t.Fatalf("get rule: %d %s", r.Status, r.Body)
	}
	if r := p.Do("POST", "/api/rules", admin, map[string]any{"name": "cooler", "sensor_id": d.SensorID, "threshold": map[string]any{"op": "OP_ABOVE", "high": 1000},
		"command": map[string]any{"name": "cool", "json_payload": map[string]any{"level": 3}}}); r.Status != 200 || r.Str("result.command.name") != "cool" {
		t.Fatalf("rule with a command: %d %s", r.Status, r.Body)
	}
	if r := p.Do("POST", "/api/rules", admin, map[string]any{"name": "bad", "sensor_id": d.SensorID, "threshold": map[string]any{"op": "OP_ABOVE", "high": 1},
		"command": map[string]any{"name": "no spaces"}}); r.Status != 400 {
		t.Fatalf("bad command name: %d %s", r.Status, r.Body)
	}
	if r := p.Do("POST", "/api/rules", admin, map[string]any{"name": "x", "sensor_id": d.SensorID, "equals": map[string]any{"bool_value": true}}); r.Status != 400 {
		t.Fatalf("equals on a double sensor: %d %s, want 400", r.Status, r.Body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	watch, err := iot.New(p.URL(), iot.WithToken(admin)).Rules.WatchAlerts(ctx, &rulesv1.WatchAlertsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if !watch.Receive() || watch.Msg().GetEvent() != "" {
		t.Fatalf("watch not confirmed: %v", watch.Err())
	}
	time.Sleep(1500 * time.Millisecond) // the pipeline loads new rules every second
	ts := time.Now().Add(-time.Minute).Unix()
	if s, body := postJSON(t, p, d.Token, fmt.Sprintf(`[{"sensor_id":%s,"timestamp":%d,"value":5},{"sensor_id":%s,"timestamp":%d,"value":11.5},{"sensor_id":%s,"timestamp":%d,"value":12},{"sensor_id":%s,"timestamp":%d,"value":4}]`,
		d.SensorID, ts, d.SensorID, ts+1, d.SensorID, ts+2, d.SensorID, ts+3)); s != 200 {
		t.Fatalf("ingest: %d %s", s, body)
	}
	var events []string
	for len(events) < 2 && watch.Receive() {
		m := watch.Msg()
		if m.GetAlert().GetRuleId() != mustInt(t, ruleID) {
			t.Fatalf("event of another rule: %v", m)
		}
		events = append(events, m.GetEvent())
	}
	if len(events) != 2 || events[0] != "fired" || events[1] != "resolved" {
		t.Fatalf("watched events %v (%v)", events, watch.Err())
	}
	as := alertsOf(t, p, admin, ruleID)
	if len(as) != 1 || as[0]["state"] != "STATE_RESOLVED" || as[0]["value"] != "11.5" || as[0]["resolve_value"] != "4" {
		t.Fatalf("alerts %v", as)
	}
	alertID := as[0]["id"].(string)
	deadline := time.Now().Add(20 * time.Second)
	for len(hook.events()) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	got := hook.events()
	if len(got) != 2 || len(hook.bad) > 0 {
		t.Fatalf("webhook got %+v, bad %v", got, hook.bad)
	}
	kinds := map[string]bool{got[0].Event: true, got[1].Event: true}
	if !kinds["fired"] || !kinds["resolved"] || got[0].Alert.ID != alertID || got[0].Attempt != 3 {
		t.Fatalf("webhook events %+v", got)
	}
	// The attempt is recorded right after the receiver answered.
	var r Response
	var deliveries []any
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r = p.Do("GET", "/api/alerts/"+alertID, admin, nil)
		deliveries, _ = r.JSON["deliveries"].([]any)
		if len(deliveries) >= 6 || time.Now().After(end) {
			break
		}
	}
	if r.Status != 200 || len(deliveries) != 6 {
		t.Fatalf("alert with deliveries: %d %s, want 6 attempts (2 refused + 1 delivered per event)", r.Status, r.Body)
	}
	oks := 0
	for _, x := range deliveries {
		if x.(map[string]any)["ok"] == true {
			oks++
		}
	}
	if oks != 2 {
		t.Fatalf("deliveries %s", r.Body)
	}
	r = p.Do("POST", "/api/alerts/"+alertID+"/ack", admin, map[string]any{})
	if r.Status != 200 || r.Str("result.acknowledged_by") == "0" || r.Str("result.acknowledge_time") == "" {
		t.Fatalf("ack: %d %s", r.Status, r.Body)
	}
	if !watch.Receive() || watch.Msg().GetEvent() != "acknowledged" {
		t.Fatalf("no acknowledged event: %v", watch.Err())
	}
	// Another user sees neither the rule nor the alert.
	if r := p.Do("POST", "/api/users", admin, map[string]any{"username": "other", "password": "other-password", "role": "user"}); r.Status != 200 {
		t.Fatalf("create user: %d %s", r.Status, r.Body)
	}
	other := p.SignIn("other", "other-password")
	for _, path := range []string{"/api/rules/" + ruleID, "/api/alerts/" + alertID} {
		if r := p.Do("GET", path, other, nil); r.Status != 404 {
			t.Fatalf("%s as another user: %d %s", path, r.Status, r.Body)
		}
	}
	if r := p.Do("GET", "/api/alerts", d.Token, nil); r.Status != 403 {
		t.Fatalf("alerts with a device token: %d %s", r.Status, r.Body)
	}
}

func mustInt(t *testing.T, s string) int64 {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRules_KafkaTwoPipelinesKillDashNineFireOncePerCrossing: rules on the
// scaled stack (Kafka, OpenSearch, PostgreSQL) evaluated by two pipeline
// processes of one consumer group; one is killed with SIGKILL mid-stream.
// Every crossing of every rule fires exactly once and resolves exactly once.
func TestRules_KafkaTwoPipelinesKillDashNineFireOncePerCrossing(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	osURL := testenv.OpenSearchURL(t)
	dsn := freshPostgres(t)
	suffix := randHex(4)
	group := "e2e-rules-" + suffix
	common := []string{"--postgres-dsn", dsn, "--kafka-brokers", brokers, "--kafka-topic", "iot.e2e.rules." + suffix,
		"--kafka-group", group, "--opensearch-url", osURL, "--opensearch-prefix", osPrefix(t, "e2e-rules-"+suffix)}
	front := Start(t, Options{Args: append([]string{"--roles", "core,ingest,query"}, common...)})
	admin := front.AdminToken()
	var devs []Device
	var ruleIDs []string
	for i := range 8 { // keys over the 6 partitions of the topic
		d := front.NewDevice(admin, fmt.Sprintf("rk-%d", i), "double")
		devs = append(devs, d)
		ruleIDs = append(ruleIDs, createRule(t, front, admin, map[string]any{
			"name": "hot", "sensor_id": d.SensorID, "threshold": map[string]any{"op": "OP_ABOVE", "high": 10},
		}))
	}
	env := []string{"IOT_ADMIN_PASSWORD=" + front.AdminPassword}
	p1 := Start(t, Options{Args: append([]string{"--roles", "pipeline"}, common...), Env: env})
	p2 := Start(t, Options{Args: append([]string{"--roles", "pipeline"}, common...), Env: env})
	deadline := time.Now().Add(60 * time.Second)
	for {
		ms := groupMembers(t, brokers, group)
		if len(ms) == 2 && ms[0] > 0 && ms[1] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the two pipelines did not share the partitions within 60s: %v", ms)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Steps 0..23: values 5,5,15,15 repeating: crossings up at 2, 6, 10,
	// 14, 18, 22 and down at 4, 8, ..., 20: 6 alerts, 5 resolved per rule.
	const steps = 24
	base := time.Now().Add(-time.Hour).Unix()
	push := func(i int) {
		v := 5
		if i%4 >= 2 {
			v = 15
		}
		for _, d := range devs {
			if s, body := postJSON(t, front, d.Token, fmt.Sprintf(`{"sensor_id":%s,"timestamp":%d,"value":%d}`, d.SensorID, base+int64(i), v)); s != 200 {
				t.Errorf("push: %d %s", s, body)
			}
		}
	}
	for i := range steps / 2 {
		push(i)
		time.Sleep(50 * time.Millisecond)
	}
	p1.Kill() // mid-stream: its uncommitted batches are redelivered to p2
	for i := steps / 2; i < steps; i++ {
		push(i)
		time.Sleep(50 * time.Millisecond)
	}
	check := func() (string, bool) {
		for _, id := range ruleIDs {
			as := alertsOf(t, front, admin, id)
			resolved := 0
			for _, a := range as {
				if a["state"] == "STATE_RESOLVED" {
					resolved++
				}
			}
			if len(as) != 6 || resolved != 5 {
				return fmt.Sprintf("rule %s: %d alerts, %d resolved, want 6 and 5", id, len(as), resolved), false
			}
		}
		return "", true
	}
	deadline = time.Now().Add(45 * time.Second)
	for {
		msg, ok := check()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s\nsurvivor:\n%s", msg, tail(p2.Logs(), 20))
		}
		time.Sleep(300 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a duplicate would show up by now
	if msg, ok := check(); !ok {
		t.Fatal(msg)
	}
	for _, d := range devs {
		if rs := readingsREST(t, front, admin, d.SensorID, "from=0"); len(rs) != steps {
			t.Fatalf("device %s has %d readings, want %d", d.ID, len(rs), steps)
		}
	}
}
