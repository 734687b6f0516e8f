package e2e

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// composeService is the part of a deploy/compose.yaml service the test runs.
type composeService struct {
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Deploy      struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
}

// TestDeploy_ComposeRolesAsLocalProcesses runs the platform services of
// deploy/compose.yaml (their commands, environments and replica counts) as
// local processes on the real PostgreSQL, Kafka and OpenSearch, with only the
// backend addresses and names swapped, and sends a reading through each
// ingest replica that must come back through the query process.
func TestDeploy_ComposeRolesAsLocalProcesses(t *testing.T) {
	brokers, osURL := testenv.KafkaBrokers(t), testenv.OpenSearchURL(t)
	b, err := os.ReadFile("../deploy/compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cf struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &cf); err != nil {
		t.Fatal(err)
	}
	n := randHex(4)
	admin := "pw-" + randHex(8)
	overrides := map[string]string{
		"IOT_POSTGRES_DSN":      freshPostgres(t),
		"IOT_KAFKA_BROKERS":     brokers,
		"IOT_OPENSEARCH_URL":    osURL,
		"IOT_KAFKA_TOPIC":       "e2e.roles." + n,
		"IOT_KAFKA_GROUP":       "e2e-roles-" + n,
		"IOT_OPENSEARCH_PREFIX": osPrefix(t, "e2e-roles-"+n),
		"IOT_ADMIN_PASSWORD":    admin,
		"IOT_KEYS_DIR":          t.TempDir(),
		"IOT_LOG_FORMAT":        "text",
	}
	roles := map[string]int{}
	type proc struct{ api, http string }
	procs := map[string][]proc{}
	start := func(name string, s composeService) {
		if len(s.Command) == 0 || s.Command[0] != "serve" {
			t.Fatalf("service %s: command %v", name, s.Command)
		}
		replicas := max(s.Deploy.Replicas, 1)
		for i := range replicas {
			addrs := freeAddrs(t, 4)
			env := []string{}
			for k, v := range s.Environment {
				if o, ok := overrides[k]; ok {
					v = o
				} else if k == "IOT_JWKS_URL" {
					coreAPI := addrs[0] // core's own (compose: http://core:8080/...)
					if len(procs["core"]) > 0 {
						coreAPI = procs["core"][0].api
					}
					v = "http://" + coreAPI + "/.well-known/jwks.json"
				} else {
					for _, host := range []string{"postgres:", "kafka:", "opensearch:", "core:"} {
						if strings.Contains(v, host) {
							t.Fatalf("service %s: %s=%s points at a compose host the test does not replace", name, k, v)
						}
					}
				}
				env = append(env, k+"="+v)
			}
			// The compose file leaves the topic and the index prefix at their
			// defaults; the test gives each run its own, so a run never
			// consumes an earlier run's readings (for sensor ids its fresh
			// registry does not have yet) nor reads them back.
			env = append(env, "IOT_KAFKA_TOPIC="+overrides["IOT_KAFKA_TOPIC"], "IOT_OPENSEARCH_PREFIX="+overrides["IOT_OPENSEARCH_PREFIX"])
			args := append(append([]string{}, s.Command...), "--data-dir", t.TempDir(),
				"--api-addr", addrs[0], "--http-addr", addrs[1], "--ws-addr", addrs[2], "--mqtt-addr", addrs[3])
			startProc(t, name+"-"+string(rune('1'+i)), binary, args, env, "http://"+addrs[0]+"/readyz")
			procs[name] = append(procs[name], proc{addrs[0], addrs[1]})
			roles[strings.TrimPrefix(s.Command[1], "--roles=")]++
		}
	}
	// Core first: the other roles verify with its JWKS.
	start("core", cf.Services["core"])
	for name, s := range cf.Services {
		if name != "core" && len(s.Command) > 0 && s.Command[0] == "serve" {
			start(name, s)
		}
	}
	if roles["ingest"] != 2 || roles["pipeline"] != 2 || roles["core"] != 1 || roles["query"] != 1 {
		t.Fatalf("compose topology: %v (want 2 ingest, 2 pipeline, 1 core, 1 query)", roles)
	}

	core := &Platform{t: t, API: procs["core"][0].api, AdminPassword: admin}
	query := &Platform{t: t, API: procs["query"][0].api}
	tok := core.AdminToken()
	d := core.NewDevice(tok, "roles", "double")
	for i, in := range procs["ingest"] {
		body := `{"sensor_id":"` + d.SensorID + `","timestamp":` + []string{"1526717967", "1526717968"}[i] + `,"value":"` + []string{"41.5", "42.5"}[i] + `"}`
		if s := postReading(t, &Platform{t: t, HTTP: in.http}, d.Token, "application/json", []byte(body)); s != 200 {
			t.Fatalf("ingest-%d: %d", i+1, s)
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		rs := readingsREST(t, query, tok, d.SensorID, "")
		if len(rs) == 2 {
			j, _ := json.Marshal(rs)
			if !strings.Contains(string(j), "41.5") || !strings.Contains(string(j), "42.5") {
				t.Fatalf("readings through the query process: %v", rs)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s the query process has %d of 2 readings: %v", len(rs), rs)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
