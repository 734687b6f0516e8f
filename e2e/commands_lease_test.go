package e2e

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/iotplatform/iotplatform/internal/registry"
	"github.com/iotplatform/iotplatform/internal/testenv"
)

// TestCommands_KilledIngestProcessDevicesGoOffline: on PostgreSQL, an
// ingest process killed with SIGKILL (it closes nothing) leaves its
// devices counted as connected; they read offline once its connection
// lease has expired, within registry.ConnectionLeaseTTL plus a renewal
// period of the kill (docs/COMMANDS.md), while a device on the surviving
// ingest process stays online.
func TestCommands_KilledIngestProcessDevicesGoOffline(t *testing.T) {
	dsn, brokers := freshPostgres(t), testenv.KafkaBrokers(t)
	admin, n := "pw-"+randHex(8), randHex(4)
	env := []string{"IOT_POSTGRES_DSN=" + dsn, "IOT_ADMIN_PASSWORD=" + admin, "IOT_KEYS_DIR=" + t.TempDir(), "IOT_LOG_FORMAT=text"}
	serve := func(name, roles string, extra ...string) ([]string, *proc) {
		a := freeAddrs(t, 4)
		args := []string{"serve", "--roles=" + roles, "--data-dir", t.TempDir(), "--api-addr", a[0], "--http-addr", a[1], "--ws-addr", a[2], "--mqtt-addr", a[3]}
		p := startProc(t, name, binary, args, append(append([]string{}, env...), extra...), "http://"+a[0]+"/readyz")
		return a, p
	}
	coreAddrs, _ := serve("core", "core")
	ingestEnv := []string{"IOT_KAFKA_BROKERS=" + brokers, "IOT_KAFKA_TOPIC=e2e.lease." + n, "IOT_JWKS_URL=http://" + coreAddrs[0] + "/.well-known/jwks.json"}
	victimAddrs, victim := serve("ingest-victim", "ingest", ingestEnv...)
	survivorAddrs, _ := serve("ingest-survivor", "ingest", ingestEnv...)

	core := &Platform{t: t, API: coreAddrs[0], AdminPassword: admin}
	tok := core.AdminToken()
	dv, ds := core.NewDevice(tok, "on-victim", "double"), core.NewDevice(tok, "on-survivor", "double")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	mosquittoSub(t, ctx, &Platform{t: t, MQTT: victimAddrs[3]}, dv, "mqttv311", dv.ID+"/commands")
	mosquittoSub(t, ctx, &Platform{t: t, MQTT: survivorAddrs[3]}, ds, "mqttv311", ds.ID+"/commands")
	waitOnline(t, core, tok, dv.ID, "mqtt")
	waitOnline(t, core, tok, ds.ID, "mqtt")

	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	bound := registry.ConnectionLeaseTTL + registry.ConnectionLeaseRenew
	for {
		st := core.Do("GET", "/api/devices/"+dv.ID+"/state", tok, nil)
		if st.Status != 200 {
			t.Fatalf("state: %d %s", st.Status, st.Body)
		}
		if st.Str("result.online") != "true" {
			if st.Str("result.edge") != "" {
				t.Errorf("offline device still names edge: %s", st.Body)
			}
			t.Logf("offline %v after the SIGKILL (bound %v)", time.Since(killed).Round(100*time.Millisecond), bound)
			break
		}
		if time.Since(killed) > bound+5*time.Second { // slack for a loaded machine
			t.Fatalf("device of the killed process still online %v after the kill: %s", time.Since(killed), st.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if st := core.Do("GET", "/api/devices/"+ds.ID+"/state", tok, nil); st.Str("result.online") != "true" || st.Str("result.edge") != "mqtt" {
		t.Fatalf("device on the surviving process: %s, want online on mqtt", st.Body)
	}
}
