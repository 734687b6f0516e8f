package e2e

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ctlRunner runs the built iotctl with a private config dir and env.
type ctlRunner struct {
	t      *testing.T
	config string
	env    []string
}

func newCtl(t *testing.T, env ...string) *ctlRunner {
	return &ctlRunner{t: t, config: t.TempDir(), env: env}
}

// run returns stdout and stderr separately.
func (c *ctlRunner) run(stdin string, args ...string) (string, string, error) {
	cmd := exec.Command(iotctl, args...)
	cmd.Env = append(os.Environ(), "IOT_API=", "IOT_TOKEN=", "IOT_PASSWORD=", "IOT_PROFILE=", "IOT_OUTPUT=", "XDG_CONFIG_HOME="+c.config)
	cmd.Env = append(cmd.Env, c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// must runs iotctl and fails the test unless it exits 0.
func (c *ctlRunner) must(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("iotctl %v: %v\n%s%s", args, err, out, errOut)
	}
	return out
}

// mustJSON runs iotctl and decodes its JSON output.
func (c *ctlRunner) mustJSON(args ...string) map[string]any {
	c.t.Helper()
	out := c.must("", args...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		c.t.Fatalf("iotctl %v printed no JSON object: %s", args, out)
	}
	return m
}

func dig(m map[string]any, path ...string) string {
	var v any = m
	for _, k := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = mm[k]
	}
	return fmt.Sprint(v)
}

// TestIotctl_HelpAndCompletion: -h prints the usage once and exits 0,
// `help` is a command, every shell gets a completion script that the shell
// accepts, completion offers sub-commands, value types, output formats and
// the stored profiles, and bad flag values are refused naming what is wrong.
func TestIotctl_HelpAndCompletion(t *testing.T) {
	c := newCtl(t)
	out, errOut, err := c.run("", "-h")
	if err != nil || strings.Count(out, "Usage:") != 1 || strings.Contains(out+errOut, "flag: help requested") ||
		!strings.Contains(out, "simulate") || !strings.Contains(out, "completion") {
		t.Fatalf("-h: %v\n%s%s", err, out, errOut)
	}
	if out := c.must("", "help", "devices"); !strings.Contains(out, "rotate-key") || !strings.Contains(out, "import") {
		t.Fatalf("help devices:\n%s", out)
	}
	if out := c.must("", "devices", "--help"); !strings.Contains(out, "iotctl devices [command]") {
		t.Fatalf("devices --help:\n%s", out)
	}

	bash := c.must("", "completion", "bash")
	script := filepath.Join(t.TempDir(), "iotctl.bash")
	if err := os.WriteFile(script, []byte(bash), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("bash", "-c", "source "+script+" && complete -p iotctl").CombinedOutput(); err != nil || !strings.Contains(string(out), "iotctl") {
		t.Fatalf("bash completion did not register: %v %s", err, out)
	}
	if zsh := c.must("", "completion", "zsh"); !strings.HasPrefix(zsh, "#compdef iotctl") {
		t.Fatalf("zsh completion: %.200s", zsh)
	}
	if fish := c.must("", "completion", "fish"); !strings.Contains(fish, "complete -c iotctl") {
		t.Fatalf("fish completion: %.200s", fish)
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"__complete", "dev"}, []string{"devices"}},
		{[]string{"__complete", "devices", ""}, []string{"create", "list", "rotate-key", "tree"}},
		{[]string{"__complete", "sensors", "create", "1", "speed", ""}, []string{"double", "long", "boolean", "string", "object"}},
		{[]string{"__complete", "latest", "-o", ""}, []string{"json", "table", "csv"}},
		{[]string{"__complete", "simulate", "--protocol", ""}, []string{"http", "ws", "mqtt", "grpc"}},
	} {
		out := c.must("", tc.args...)
		offered := map[string]bool{}
		for _, l := range strings.Split(out, "\n") {
			w, _, _ := strings.Cut(l, "\t")
			offered[w] = true
		}
		for _, w := range tc.want {
			if !offered[w] {
				t.Errorf("%v: no %q in\n%s", tc.args, w, out)
			}
		}
	}
	// Profiles complete from the profile file.
	if err := os.MkdirAll(filepath.Join(c.config, "iotctl"), 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := `{"current_profile":"lab","profiles":{"lab":{"api":"http://127.0.0.1:1"},"prod":{"api":"http://127.0.0.1:2"}}}`
	if err := os.WriteFile(filepath.Join(c.config, "iotctl", "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := c.must("", "__complete", "--profile", ""); !strings.Contains(out, "lab\n") || !strings.Contains(out, "prod\n") {
		t.Fatalf("profile completion:\n%s", out)
	}
	if out := c.must("", "__complete", "profiles", "use", ""); !strings.Contains(out, "prod\n") {
		t.Fatalf("profiles use completion:\n%s", out)
	}

	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"-o", "yaml", "devices", "list"}, `output format "yaml"`},
		{[]string{"IOT_TIMEOUT=soon"}, []string{"devices", "list"}, "IOT_TIMEOUT"},
		{[]string{"IOT_SIM_DEVICES=many"}, []string{"simulate"}, "IOT_SIM_DEVICES"},
		{nil, []string{"latest", "x"}, `"x" is not an id`},
		{nil, []string{"--profile", "nope", "devices", "list"}, `no profile "nope"`},
	} {
		r := &ctlRunner{t: t, config: c.config, env: tc.env}
		out, errOut, err := r.run("", tc.args...)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v %v: want an error naming %s, got %v\n%s%s", tc.env, tc.args, tc.want, err, out, errOut)
		}
	}
}

// TestIotctl_ProfilesSelectPlatformAndCredentials: login writes a profile
// (API URL and session, 0600 in a 0700 dir) and makes it current; --profile
// and $IOT_PROFILE select another; `login --with-token` stores a device key;
// logout revokes the refresh token; `profiles use/delete` switch and forget.
func TestIotctl_ProfilesSelectPlatformAndCredentials(t *testing.T) {
	a := Start(t, Options{})
	b := Start(t, Options{})
	c := newCtl(t)
	if tok := strings.TrimSpace(c.must(a.AdminPassword+"\n", "login", "--api", a.URL(), "root")); strings.Count(tok, ".") != 2 {
		t.Fatalf("login printed %q, want a JWT", tok)
	}
	c.env = []string{"IOT_PASSWORD=" + b.AdminPassword}
	c.must("", "login", "--profile", "b", "--api", b.URL(), "root")
	c.env = nil

	dir := filepath.Join(c.config, "iotctl")
	fi, err := os.Stat(filepath.Join(dir, "config.json"))
	di, derr := os.Stat(dir)
	if err != nil || derr != nil || fi.Mode().Perm() != 0o600 || di.Mode().Perm() != 0o700 {
		t.Fatalf("profile file %v %v / dir %v %v: want 0600 in 0700", fi, err, di, derr)
	}
	rows := csvRows(t, c.must("", "profiles", "list", "-o", "csv"))
	if len(rows) != 3 || strings.Join(rows[0], ",") != "name,current,api,user,signed_in" ||
		strings.Join(rows[1], ",") != "b,true,"+b.URL()+",root,true" || strings.Join(rows[2], ",") != "default,false,"+a.URL()+",root,true" {
		t.Fatalf("profiles list: %v", rows)
	}

	// The current profile is b (the last login); --profile and $IOT_PROFILE pick a.
	c.must("", "devices", "create", "on-b")
	c.must("", "--profile", "default", "devices", "create", "on-a")
	c.env = []string{"IOT_PROFILE=default"}
	c.must("", "devices", "create", "on-a-too")
	c.env = nil
	names := func(p *Platform) string {
		r := p.Do("GET", "/api/devices/", p.AdminToken(), nil)
		return string(r.Body)
	}
	if na, nb := names(a), names(b); !strings.Contains(na, "on-a") || !strings.Contains(na, "on-a-too") || strings.Contains(na, "on-b") ||
		!strings.Contains(nb, "on-b") || strings.Contains(nb, "on-a") {
		t.Fatalf("devices landed on the wrong platform:\na: %s\nb: %s", na, nb)
	}
	c.must("", "profiles", "use", "default")
	if out := c.must("", "devices", "list", "-o", "csv"); !strings.Contains(out, "on-a-too") {
		t.Fatalf("after profiles use default: %s", out)
	}

	// A device key stored with --with-token pushes as the device; the
	// current profile stays the user's.
	dev := a.NewDevice(a.AdminToken(), "keyed", "double")
	c.must(dev.Token+"\n", "login", "--profile", "dev", "--api", a.URL(), "--with-token")
	if out := c.must("", "profiles", "list", "-o", "csv"); !strings.Contains(out, "default,true,") || !strings.Contains(out, "dev,false,"+a.URL()+",,true") {
		t.Fatalf("after login --with-token:\n%s", out)
	}
	if m := c.mustJSON("--profile", "dev", "push", dev.SensorID, "7.5"); dig(m, "accepted") != "1" {
		t.Fatalf("push with the stored device key: %v", m)
	}
	if out, errOut, err := c.run("", "--profile", "dev", "devices", "list"); err == nil || !strings.Contains(errOut, "permission_denied") {
		t.Fatalf("a device key listing devices: %v %s%s", err, out, errOut)
	}

	// logout revokes the session's refresh token.
	raw, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	var cfg struct {
		Profiles map[string]struct {
			RefreshToken string `json:"refresh_token"`
		} `json:"profiles"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Profiles["b"].RefreshToken == "" {
		t.Fatalf("profile b has no refresh token: %v %s", err, raw)
	}
	c.must("", "--profile", "b", "logout")
	if r := b.Do("POST", "/api/users/refresh", "", map[string]string{"refresh_token": cfg.Profiles["b"].RefreshToken}); r.Status != 401 {
		t.Fatalf("refresh token after logout: %d %s, want 401", r.Status, r.Body)
	}
	if out, errOut, err := c.run("", "--profile", "b", "devices", "list"); err == nil || !strings.Contains(errOut, "unauthenticated") {
		t.Fatalf("a logged-out profile still works: %v %s%s", err, out, errOut)
	}
	c.must("", "profiles", "delete", "b")
	if out := c.must("", "profiles", "list", "-o", "csv"); strings.Contains(out, "\nb,") {
		t.Fatalf("profile b not deleted:\n%s", out)
	}
}

func csvRows(t *testing.T, s string) [][]string {
	t.Helper()
	rows, err := csv.NewReader(strings.NewReader(s)).ReadAll()
	if err != nil {
		t.Fatalf("not CSV: %v\n%s", err, s)
	}
	return rows
}

// TestIotctl_OutputFormats: -o json (default), table and csv print the
// same answers: a list's rows, a wrapped message, a reading's value column;
// device ids complete from the API.
func TestIotctl_OutputFormats(t *testing.T) {
	p := Start(t, Options{})
	c := newCtl(t, "IOT_API="+p.URL(), "IOT_TOKEN="+p.AdminToken())
	id := dig(c.mustJSON("devices", "create", "fmt-car", "desc, with comma"), "result", "id")
	sen := c.mustJSON("sensors", "create", id, "speed", "double")
	sid := dig(sen, "sensor", "id")
	key := dig(c.mustJSON("devices", "key", id), "token")
	pusher := &ctlRunner{t: t, config: c.config, env: []string{"IOT_API=" + p.URL(), "IOT_TOKEN=" + key}}
	pusher.must("", "push", sid, "12.25")
	pusher.must("", "push", sid, "13.5")

	rows := csvRows(t, c.must("", "devices", "list", "-o", "csv"))
	if len(rows) != 2 || rows[0][0] != "id" || rows[0][1] != "name" || rows[1][0] != id || rows[1][1] != "fmt-car" || rows[1][2] != "desc, with comma" {
		t.Fatalf("devices list -o csv: %v", rows)
	}
	rows = csvRows(t, c.must("", "readings", sid, "-o", "csv"))
	if len(rows) != 3 || strings.Join(rows[0], ",") != "sensor_id,device_id,timestamp,value" || rows[1][3] != "13.5" || rows[2][3] != "12.25" || rows[1][1] != id {
		t.Fatalf("readings -o csv: %v", rows)
	}
	table := c.must("", "sensors", "create", id, "temp", "long", "-o", "table")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") || !strings.Contains(lines[0], "VALUE_TYPE") || !strings.Contains(lines[1], "VALUE_TYPE_LONG") {
		t.Fatalf("sensors create -o table:\n%s", table)
	}
	c.env = append(c.env, "IOT_OUTPUT=table")
	latest := c.must("", "latest", sid)
	if lines := strings.Split(strings.TrimSpace(latest), "\n"); len(lines) != 2 || len(strings.Fields(lines[0])) != 4 || !strings.HasSuffix(lines[1], "13.5") {
		t.Fatalf("latest with IOT_OUTPUT=table:\n%s", latest)
	}
	if m := c.mustJSON("-o", "json", "devices", "get", id); dig(m, "result", "name") != "fmt-car" {
		t.Fatalf("devices get -o json: %v", m)
	}
	// Device ids complete from the API, with their names.
	for _, args := range [][]string{{"__complete", "devices", "tree", ""}, {"__complete", "sensors", "create", ""}} {
		if out := c.must("", args...); !strings.Contains(out, id+"\tfmt-car\n") {
			t.Errorf("%v: no %s<TAB>fmt-car in\n%s", args, id, out)
		}
	}
}

// TestIotctl_SimulateEveryProtocol: simulate creates N devices × M sensors
// and sends --count readings per sensor over each protocol; every reading
// is acknowledged, and the Query API returns exactly those readings. With
// --device it feeds an existing device.
func TestIotctl_SimulateEveryProtocol(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	c := newCtl(t, "IOT_API="+p.URL(), "IOT_TOKEN="+admin, "IOT_HTTP_URL=http://"+p.HTTP+"/",
		"IOT_WS_URL=ws://"+p.WS+"/", "IOT_MQTT_ADDR="+p.MQTT)
	const n, m, count = 2, 2, 5
	for _, proto := range []string{"http", "ws", "mqtt", "grpc"} {
		out, errOut, err := c.run("", "simulate", "--devices", strconv.Itoa(n), "--sensors", strconv.Itoa(m),
			"--rate", "50", "--count", strconv.Itoa(count), "--protocol", proto)
		if err != nil {
			t.Fatalf("simulate %s: %v\n%s%s", proto, err, out, errOut)
		}
		var sum map[string]any
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("simulate %s summary: %v\n%s", proto, err, out)
		}
		if sum["acked"] != float64(n*m*count) || sum["sent"] != float64(n*m*count) || sum["errors"] != float64(0) || sum["protocol"] != proto {
			t.Fatalf("simulate %s: %v\n%s", proto, sum, errOut)
		}
		if !strings.Contains(errOut, fmt.Sprintf("%d devices", n)) {
			t.Errorf("simulate %s printed no start line: %s", proto, errOut)
		}
		ids := strings.Split(fmt.Sprint(sum["device_ids"]), ",")
		if len(ids) != n {
			t.Fatalf("simulate %s device ids: %v", proto, sum["device_ids"])
		}
		for _, id := range ids {
			ss := p.Do("GET", "/api/devices/"+id+"/sensors/", admin, nil)
			list, _ := ss.JSON["result"].([]any)
			if len(list) != m {
				t.Fatalf("device %s has %d sensors, want %d: %s", id, len(list), m, ss.Body)
			}
			for _, s := range list {
				sid := fmt.Sprint(s.(map[string]any)["id"])
				r := p.Do("GET", "/api/sensors/"+sid+"/readings?limit=100", admin, nil)
				got, _ := r.JSON["readings"].([]any)
				if len(got) != count {
					t.Fatalf("%s: sensor %s has %d readings, want %d: %s", proto, sid, len(got), count, r.Body)
				}
			}
		}
	}
	// An existing device: its double sensor gets the readings.
	d := p.NewDevice(admin, "existing", "double")
	out := c.must("", "simulate", "--device", d.ID, "--count", "3", "--rate", "50", "--protocol", "http", "-o", "csv")
	rows := csvRows(t, out)
	if len(rows) != 2 || rows[0][6] != "acked" || rows[1][6] != "3" || rows[1][10] != d.ID {
		t.Fatalf("simulate --device: %v", rows)
	}
	if r := p.Do("GET", "/api/sensors/"+d.SensorID+"/readings", admin, nil); len(r.JSON["readings"].([]any)) != 3 {
		t.Fatalf("existing device's readings: %s", r.Body)
	}
	// A device key cannot create devices: the error is reported, exit 1.
	bad := &ctlRunner{t: t, config: c.config, env: []string{"IOT_API=" + p.URL(), "IOT_TOKEN=" + d.Token}}
	if out, errOut, err := bad.run("", "simulate", "--count", "1"); err == nil || !strings.Contains(errOut, "permission_denied") {
		t.Fatalf("simulate with a device key: %v %s%s", err, out, errOut)
	}
}

// TestIotctl_TailPrintsLiveReadings: tail subscribes and prints readings
// pushed after it started, one JSON object a line, and exits after --count;
// --since replays stored readings first; -o csv prints a header once.
func TestIotctl_TailPrintsLiveReadings(t *testing.T) {
	p := Start(t, Options{})
	admin := p.AdminToken()
	d := p.NewDevice(admin, "tailed", "double")
	c := newCtl(t, "IOT_API="+p.URL(), "IOT_TOKEN="+admin)
	cmd := exec.Command(iotctl, "tail", d.SensorID, "--count", "3", "--for", "60s")
	cmd.Env = append(os.Environ(), "IOT_API="+p.URL(), "IOT_TOKEN="+admin, "XDG_CONFIG_HOME="+c.config, "IOT_OUTPUT=", "IOT_PROFILE=")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var errOut strings.Builder
	cmd.Stderr = &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	// Push every 200 ms until tail has printed three readings (it may have
	// subscribed after the first pushes: those it never sees, being live only).
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for i := 1; ; i++ {
			body := fmt.Sprintf(`{"sensor_id":%q,"value":%d}`, d.SensorID, 100+i)
			if code := pushJSON(p, d.Token, body); code != 200 {
				t.Errorf("push: %d", code)
				return
			}
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	var got []string
	deadline := time.After(30 * time.Second)
	for len(got) < 3 {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("tail ended after %d lines: %v\n%s", len(got), got, errOut.String())
			}
			got = append(got, l)
		case <-deadline:
			t.Fatalf("tail printed %d lines in 30s: %v\n%s", len(got), got, errOut.String())
		}
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("tail exited with %v: %s", err, errOut.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("tail did not exit after --count 3")
	}
	prev := 0.0
	for _, l := range got {
		var r map[string]any
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("tail line is not JSON: %q", l)
		}
		v, _ := r["double_value"].(float64)
		if r["sensor_id"] != d.SensorID || v <= prev || v < 101 {
			t.Fatalf("tail lines out of order or foreign: %v", got)
		}
		prev = v
	}
	// --since replays what is stored; csv has one header.
	out := c.must("", "tail", d.SensorID, "--since", "2000-01-01T00:00:00Z", "--count", "2", "--for", "30s", "-o", "csv")
	rows := csvRows(t, out)
	if len(rows) != 3 || strings.Join(rows[0], ",") != "sensor_id,device_id,timestamp,value" || rows[1][0] != d.SensorID {
		t.Fatalf("tail --since -o csv: %v", rows)
	}
}

// pushJSON pushes a JSON body to the HTTP gateway as the device.
func pushJSON(p *Platform, token, body string) int {
	req, err := http.NewRequest("POST", "http://"+p.HTTP+"/", strings.NewReader(body))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// bashBlock returns the first ```bash block after heading in a doc file.
func bashBlock(t *testing.T, file, heading string) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", file))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	i := strings.Index(s, heading+"\n")
	if i < 0 {
		t.Fatalf("%s has no %q section", file, heading)
	}
	s = s[i:]
	a := strings.Index(s, "```bash\n")
	if a < 0 {
		t.Fatalf("no bash block under %q in %s", heading, file)
	}
	s = s[a+len("```bash\n"):]
	return s[:strings.Index(s, "```")]
}

// runDocBlock runs a doc's iotctl commands with bash against p, with
// iotctl on PATH, a fresh config dir and the addresses rewritten to p's.
func runDocBlock(t *testing.T, p *Platform, block string) string {
	t.Helper()
	script := strings.NewReplacer(
		"http://localhost:8080", p.URL(),
		"data/admin-password", filepath.Join(p.DataDir, "admin-password"),
		"bin/iotctl", iotctl,
	).Replace("set -euo pipefail\n" + block)
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(iotctl)+":"+os.Getenv("PATH"), "XDG_CONFIG_HOME="+t.TempDir(),
		"IOT_API=", "IOT_TOKEN=", "IOT_PASSWORD=", "IOT_PROFILE=", "IOT_OUTPUT=",
		"IOT_HTTP_URL=http://"+p.HTTP+"/", "IOT_WS_URL=ws://"+p.WS+"/", "IOT_MQTT_ADDR="+p.MQTT)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doc commands failed: %v\n%s\n%s", err, script, out)
	}
	return string(out)
}

// TestREADME_IotctlExampleRuns runs the README's iotctl block on a platform
// that already has a device (as after the curl walk-through): the example
// uses the ids it creates, never fixed ones.
func TestREADME_IotctlExampleRuns(t *testing.T) {
	p := Start(t, Options{GeneratedPassword: true})
	admin := p.SignIn("root", readAdminPassword(t, p))
	first := p.NewDevice(admin, "demo-device", "double")
	out := runDocBlock(t, p, bashBlock(t, "README.md", "## iotctl"))
	for _, want := range []string{"42.5", "sensor_id,device_id,timestamp,value", `"engine"`, "ACKED", "mqtt"} {
		if !strings.Contains(out, want) {
			t.Errorf("README iotctl output lacks %s:\n%s", want, out)
		}
	}
	if r := p.Do("GET", "/api/sensors/"+first.SensorID+"/readings", admin, nil); strings.Contains(string(r.Body), "42.5") {
		t.Fatalf("the example pushed to the walk-through's sensor: %s", r.Body)
	}
}

// TestDocsCLI_QuickStartRuns runs docs/CLI.md's quick start.
func TestDocsCLI_QuickStartRuns(t *testing.T) {
	p := Start(t, Options{GeneratedPassword: true})
	out := runDocBlock(t, p, bashBlock(t, "docs/CLI.md", "## Quick start"))
	flat := strings.Join(strings.Fields(out), "") // protojson varies its spacing
	for _, want := range []string{"21.5", "TIMESTAMP", "grpc", `"double_value":21.5`} {
		if !strings.Contains(flat, want) {
			t.Errorf("docs/CLI.md quick start output lacks %s:\n%s", want, out)
		}
	}
}

func readAdminPassword(t *testing.T, p *Platform) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(p.DataDir, "admin-password"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestIotctl_SimulateAndTailOverTLS: against a platform serving TLS on
// every listener, simulate reaches each gateway over https, wss, MQTT over
// TLS and gRPC over TLS (trusting the CA through $SSL_CERT_FILE), and tail
// reads over https; an API URL with a trailing slash works too.
func TestIotctl_SimulateAndTailOverTLS(t *testing.T) {
	tp := startTLS(t, false)
	c := newCtl(t, "SSL_CERT_FILE="+tp.ca.CertFile, "IOT_API=https://"+tp.API+"/", "IOT_TOKEN="+tp.AdminToken(),
		"IOT_HTTP_URL=https://"+tp.HTTP+"/", "IOT_WS_URL=wss://"+tp.WS+"/", "IOT_MQTT_ADDR=tls://"+tp.MQTT)
	var sensor string
	for _, proto := range []string{"http", "ws", "mqtt", "grpc"} {
		out, errOut, err := c.run("", "simulate", "--count", "2", "--rate", "50", "--protocol", proto, "-o", "csv")
		rows := csvRows(t, out)
		if err != nil || len(rows) != 2 || rows[1][6] != "2" || rows[1][8] != "0" {
			t.Fatalf("simulate %s over TLS: %v %v\n%s", proto, err, rows, errOut)
		}
		ss := tp.Do("GET", "/api/devices/"+rows[1][10]+"/sensors/", tp.AdminToken(), nil)
		list, _ := ss.JSON["result"].([]any)
		if len(list) != 1 {
			t.Fatalf("simulated device sensors: %s", ss.Body)
		}
		sensor = fmt.Sprint(list[0].(map[string]any)["id"])
	}
	out := c.must("", "tail", sensor, "--since", "2000-01-01T00:00:00Z", "--count", "2", "--for", "20s")
	// protojson varies its spacing: compare without blanks.
	if n := strings.Count(strings.Join(strings.Fields(out), ""), `"sensor_id":"`+sensor+`"`); n != 2 {
		t.Fatalf("tail over https: %s", out)
	}
}
