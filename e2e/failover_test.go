package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/confluentinc/confluent-kafka-go/v2/kafka"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/iotplatform/iotplatform/internal/testenv"
)

// freshPostgres creates a database for one test and returns its DSN.
func freshPostgres(t *testing.T) string {
	t.Helper()
	dsn := testenv.PostgresDSN(t)
	admin, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := "e2e_" + randHex(6)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// groupMembers returns how many partitions each member of group holds.
func groupMembers(t *testing.T, brokers, group string) []int {
	t.Helper()
	ac, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": brokers})
	if err != nil {
		t.Fatal(err)
	}
	defer ac.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := ac.DescribeConsumerGroups(ctx, []string{group})
	if err != nil || len(res.ConsumerGroupDescriptions) != 1 {
		return nil
	}
	var out []int
	for _, m := range res.ConsumerGroupDescriptions[0].Members {
		out = append(out, len(m.Assignment.TopicPartitions))
	}
	return out
}

// TestPipeline_KillDashNineTakeOverWithinSeconds: two pipeline processes
// share the Kafka consumer group; one is killed with SIGKILL and the other
// takes its partitions over quickly enough that readings keep reaching the
// store (librdkafka's default 45 s session timeout stalled them).
func TestPipeline_KillDashNineTakeOverWithinSeconds(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	osURL := testenv.OpenSearchURL(t)
	dsn := freshPostgres(t)
	suffix := randHex(4)
	group := "e2e-fo-" + suffix
	common := []string{"--postgres-dsn", dsn, "--kafka-brokers", brokers, "--kafka-topic", "iot.e2e.fo." + suffix,
		"--kafka-group", group, "--opensearch-url", osURL, "--opensearch-prefix", osPrefix(t, "e2e-fo-"+suffix)}
	front := Start(t, Options{Args: append([]string{"--roles", "core,ingest,query"}, common...)})
	admin := front.AdminToken()
	var devs []Device
	for i := range 12 { // keys over the 6 partitions of the topic
		devs = append(devs, front.NewDevice(admin, fmt.Sprintf("fo-%d", i), "double"))
	}
	// The pipelines share the registry (PostgreSQL); their keys are not used.
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
	push := func(v int) {
		t.Helper()
		for _, d := range devs {
			if s, body := postJSON(t, front, d.Token, fmt.Sprintf(`{"sensor_id":%s,"value":%d}`, d.SensorID, v)); s != 200 {
				t.Fatalf("push: %d %s", s, body)
			}
		}
	}
	push(1)
	for _, d := range devs {
		if rs := waitReadings(t, front, admin, d.SensorID, 1); len(rs) != 1 {
			t.Fatalf("before the kill device %s has %d readings", d.ID, len(rs))
		}
	}

	p1.Kill()
	killed := time.Now()
	push(2)
	// Generous for a 6 s session timeout plus a rebalance, far below 45 s.
	const bound = 25 * time.Second
	for _, d := range devs {
		for {
			rs := readingsREST(t, front, admin, d.SensorID, "")
			if len(rs) == 2 {
				break
			}
			if time.Since(killed) > bound {
				t.Fatalf("%v after kill -9 of one pipeline, device %s's reading is still not stored (partitions not taken over)\nsurvivor:\n%s",
					bound, d.ID, tail(p2.Logs(), 20))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("every reading stored %v after kill -9 of one pipeline", time.Since(killed).Round(100*time.Millisecond))
	if strings.Contains(p2.Logs(), "level=ERROR") {
		t.Errorf("survivor logged errors:\n%s", tail(p2.Logs(), 20))
	}
}

// TestKafka_TwoDeploymentsOnOneBrokerKeepTheirDeadLetters: deployments
// that share a broker (different --kafka-topic) each list only their own
// dead letters.
func TestKafka_TwoDeploymentsOnOneBrokerKeepTheirDeadLetters(t *testing.T) {
	brokers := testenv.KafkaBrokers(t)
	start := func(name string) (*Platform, Device) {
		suffix := randHex(4)
		p := Start(t, Options{Args: []string{"--kafka-brokers", brokers, "--kafka-topic", name + "-" + suffix + ".readings",
			"--kafka-group", "e2e-" + name + "-" + suffix}})
		return p, p.NewDevice(p.AdminToken(), name, "double")
	}
	a, da := start("depa")
	b, db := start("depb")
	mosquittoPub(t, a, da, 1, "mqttv311", "payload of a")
	mosquittoPub(t, b, db, 1, "mqttv311", "payload of b")
	for _, tc := range []struct {
		p    *Platform
		d    Device
		want string
	}{{a, da, "payload of a"}, {b, db, "payload of b"}} {
		dls := waitDeadLetters(t, tc.p, tc.p.AdminToken(), tc.d)
		time.Sleep(2 * time.Second) // a letter of the other deployment would arrive by now
		all := waitDeadLetters(t, tc.p, tc.p.AdminToken(), Device{ID: tc.d.ID})
		if len(dls) != 1 || string(dls[0].GetPayload()) != tc.want || len(all) != 1 {
			t.Errorf("deployment of %q lists dead letters %v", tc.want, all)
		}
	}
}

// osPrefix returns an OpenSearch index prefix for one test and deletes the
// test's indices and index templates (<prefix>-*) when it ends, after the
// processes the test starts later have stopped (cleanups run last-in,
// first-out), so runs do not pile up shards on the shared test node.
func osPrefix(t *testing.T, prefix string) string {
	t.Helper()
	osURL := testenv.OpenSearchURL(t)
	t.Cleanup(func() {
		for _, p := range []string{"/" + prefix + "-*?expand_wildcards=all", "/_index_template/" + prefix + "-*"} {
			req, _ := http.NewRequest(http.MethodDelete, osURL+p, nil)
			if res, err := http.DefaultClient.Do(req); err == nil {
				res.Body.Close()
			}
		}
	})
	return prefix
}
