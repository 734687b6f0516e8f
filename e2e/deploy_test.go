package e2e

import (
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// envOnly are variables read from the environment without a flag:
// IOT_ADMIN_PASSWORD (app.Config) and PORT (function mode, set by Cloud
// Run / Knative).
var envOnly = []string{"IOT_ADMIN_PASSWORD", "PORT"}

// helpNames returns the flags and IOT_* variables `iotplatform <sub> -h` lists.
func helpNames(t *testing.T, sub string) (flags, envs map[string]bool) {
	t.Helper()
	out, _ := exec.Command(binary, sub, "-h").CombinedOutput()
	flags, envs = map[string]bool{}, map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	for _, m := range regexp.MustCompile(`IOT_[A-Z0-9_]+`).FindAllString(string(out), -1) {
		envs[m] = true
	}
	if len(flags) < 8 || len(envs) < 8 {
		t.Fatalf("%s -h lists %d flags and %d variables:\n%s", sub, len(flags), len(envs), out)
	}
	return flags, envs
}

// deployUse is what one deployment file passes to the binary.
type deployUse struct {
	commands [][]string // argument lists starting at serve/function/healthcheck
	envs     []string   // IOT_* variable names it sets
}

var envName = regexp.MustCompile(`^IOT_[A-Z0-9_]+$`)

func collectYAML(n *yaml.Node, u *deployUse) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.MappingNode:
		for _, c := range n.Content {
			collectYAML(c, u)
		}
	case yaml.SequenceNode:
		var args []string
		for _, c := range n.Content {
			if c.Kind == yaml.ScalarNode {
				args = append(args, c.Value)
			}
			collectYAML(c, u)
		}
		for i, a := range args {
			if a == "serve" || a == "function" || a == "healthcheck" {
				u.commands = append(u.commands, args[i:])
				break
			}
		}
	case yaml.ScalarNode:
		if envName.MatchString(n.Value) {
			u.envs = append(u.envs, n.Value)
		}
	}
}

// dockerfileLines joins continuation lines and drops comments.
func dockerfileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" {
			continue
		}
		if strings.HasSuffix(l, "\\") {
			cur += strings.TrimSuffix(l, "\\") + " "
			continue
		}
		out = append(out, cur+l)
		cur = ""
	}
	return out
}

func collectDockerfile(t *testing.T, path string) deployUse {
	t.Helper()
	var u deployUse
	for _, l := range dockerfileLines(t, path) {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "ENV":
			for _, f := range strings.Fields(rest) {
				if k, _, ok := strings.Cut(f, "="); ok && strings.HasPrefix(k, "IOT_") {
					u.envs = append(u.envs, k)
				}
			}
		case "CMD", "ENTRYPOINT", "HEALTHCHECK":
			if i := strings.Index(rest, "["); i >= 0 {
				var args []string
				if err := json.Unmarshal([]byte(rest[i:]), &args); err != nil {
					t.Fatalf("%s: %s: %v", path, l, err)
				}
				var n yaml.Node
				n.Kind = yaml.SequenceNode
				for _, a := range args {
					n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: a})
				}
				collectYAML(&n, &u)
			}
		}
	}
	return u
}

// deploymentFiles lists every file under deploy/ that configures the binary.
func deploymentFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, g := range []string{"../deploy/compose.yaml", "../deploy/k8s/*.yaml", "../deploy/knative/*.yaml", "../deploy/cloudrun/*.yaml", "../deploy/openwhisk/*.yaml", "../deploy/Dockerfile", "../deploy/openwhisk/Dockerfile"} {
		m, _ := filepath.Glob(g)
		if len(m) == 0 {
			t.Fatalf("no deployment file matches %s", g)
		}
		files = append(files, m...)
	}
	return files
}

func TestDeploy_EveryFlagAndVariableInTheDeploymentFilesExists(t *testing.T) {
	serveFlags, serveEnv := helpNames(t, "serve")
	fnFlags, fnEnv := helpNames(t, "function")
	totalFlags, totalEnvs := 0, 0
	for _, f := range deploymentFiles(t) {
		var u deployUse
		if strings.HasSuffix(f, "Dockerfile") {
			u = collectDockerfile(t, f)
		} else {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			dec := yaml.NewDecoder(bytes.NewReader(b))
			for {
				var n yaml.Node
				if err := dec.Decode(&n); err != nil {
					if err.Error() != "EOF" {
						t.Fatalf("%s: not valid YAML: %v", f, err)
					}
					break
				}
				collectYAML(&n, &u)
			}
		}
		for _, cmd := range u.commands {
			flags := serveFlags
			if cmd[0] == "function" {
				flags = fnFlags
			}
			for _, a := range cmd[1:] {
				if !strings.HasPrefix(a, "-") {
					continue
				}
				name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
				totalFlags++
				if !flags[name] {
					t.Errorf("%s: `%s` has no flag --%s", f, cmd[0], name)
				}
			}
			// Dockerfiles take the procedures from ENV: their flags are checked above.
			if cmd[0] == "function" && !strings.HasSuffix(f, "Dockerfile") {
				checkFunctionArgs(t, f, cmd)
			}
		}
		for _, e := range u.envs {
			totalEnvs++
			if !serveEnv[e] && !fnEnv[e] && !slices.Contains(envOnly, e) {
				t.Errorf("%s: variable %s is read by neither `serve` nor `function`", f, e)
			}
		}
	}
	// The walk itself must have found what the files hold.
	if totalFlags < 12 || totalEnvs < 30 {
		t.Fatalf("found only %d flags and %d variables in the deployment files", totalFlags, totalEnvs)
	}
}

// checkFunctionArgs runs a function command line from a deployment file
// against an unreachable database: the configuration must validate (the
// failure must be the connection, not a flag or a procedure name).
func checkFunctionArgs(t *testing.T, file string, cmd []string) {
	t.Helper()
	keys := t.TempDir()
	if err := os.WriteFile(filepath.Join(keys, "k.pem"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{}
	for _, a := range cmd {
		if !strings.HasPrefix(a, "--keys-dir") {
			args = append(args, a)
		}
	}
	args = append(args, "--keys-dir", keys, "--postgres-dsn", "postgres://x@127.0.0.1:9/x?connect_timeout=2", "--jwks-url", "http://127.0.0.1:9/jwks", "--addr", "127.0.0.1:0")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, args...).CombinedOutput()
	if err == nil || strings.Contains(string(out), "config:") || !strings.Contains(string(out), "registry") {
		t.Errorf("%s: %v: want a registry connection failure, got %v\n%s", file, cmd, err, out)
	}
}

func TestDeploy_OpenWhiskManifestNamesExistingProcedures(t *testing.T) {
	b, err := os.ReadFile("../deploy/openwhisk/manifest.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Packages map[string]struct {
			Actions map[string]struct {
				Docker      string
				WebExport   string            `yaml:"web-export"`
				Annotations map[string]string `yaml:"annotations"`
			}
		}
	}
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	acts := m.Packages["iot"].Actions
	for _, want := range []string{"users-signin", "users-get", "devices-add", "devices-get", "sensors-add", "sensors-get"} {
		a, ok := acts[want]
		if !ok {
			t.Errorf("manifest lacks action %s", want)
			continue
		}
		if a.Docker == "" || a.WebExport != "raw" || a.Annotations["procedures"] == "" {
			t.Errorf("action %s: %+v (want a docker image, web-export raw, procedures)", want, a)
			continue
		}
		checkFunctionArgs(t, "openwhisk/manifest.yaml", []string{"function", "--contract=openwhisk", "--procedures=" + a.Annotations["procedures"]})
	}
}

func TestDeploy_DockerfileBuildStageBuildsAndTheHealthcheckWorks(t *testing.T) {
	lines := dockerfileLines(t, "../deploy/Dockerfile")
	out := t.TempDir()
	stage, built, args := 0, 0, map[string]string{}
	var final []string
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		switch strings.ToUpper(instr) {
		case "FROM":
			stage++
			final = nil
		case "ARG":
			k, v, _ := strings.Cut(rest, "=")
			args[k] = v
		case "RUN":
			if stage == 1 && strings.Contains(rest, "go build") {
				// The build stage's own line, with its ARGs (VERSION set).
				args["VERSION"] = "v0.0.0-docker"
				cmdline := os.Expand(strings.ReplaceAll(rest, "/out/", out+"/"), func(k string) string { return args[k] })
				c := exec.Command("bash", "-c", cmdline)
				c.Dir = ".."
				if b, err := c.CombinedOutput(); err != nil {
					t.Fatalf("Dockerfile build line failed: %s\n%v\n%s", cmdline, err, b)
				}
				built++
			}
		default:
			final = append(final, l)
		}
	}
	if stage != 2 || built != 2 {
		t.Fatalf("Dockerfile: %d stages, %d go build lines (want 2 and 2)", stage, built)
	}
	joined := strings.Join(final, "\n")
	for _, want := range []string{"USER 65532", `HEALTHCHECK`, `CMD ["/iotplatform", "healthcheck"]`, `ENTRYPOINT ["/iotplatform"]`} {
		if !strings.Contains(joined, want) {
			t.Errorf("final stage lacks %q", want)
		}
	}
	bin := filepath.Join(out, "iotplatform")
	v, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(v), "v0.0.0-docker") {
		t.Fatalf("built binary version: %q %v", v, err)
	}
	// distroless/base has glibc and nothing else: the binary may need no other library.
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	libs, _ := f.ImportedLibraries()
	f.Close()
	for _, l := range libs {
		if !regexp.MustCompile(`^(libc|libm|libpthread|libdl|librt|libresolv)\.so\.\d+$|^ld-linux`).MatchString(l) {
			t.Errorf("the image binary needs %s, which distroless/base lacks", l)
		}
	}

	// The HEALTHCHECK command: 0 when /readyz is 200, non-zero otherwise.
	addrs := freeAddrs(t, 4)
	startProc(t, "image-binary", bin, []string{"serve", "--data-dir", t.TempDir(), "--log-format", "text",
		"--api-addr", addrs[0], "--http-addr", addrs[1], "--ws-addr", addrs[2], "--mqtt-addr", addrs[3]},
		[]string{"IOT_ADMIN_PASSWORD=pw-" + randHex(6)}, "http://"+addrs[0]+"/readyz")
	hc := exec.Command(bin, "healthcheck")
	hc.Env = append(os.Environ(), "IOT_API_ADDR="+addrs[0])
	if b, err := hc.CombinedOutput(); err != nil {
		t.Errorf("healthcheck against a ready server: %v %s", err, b)
	}
	hc = exec.Command(bin, "healthcheck")
	hc.Env = append(os.Environ(), "IOT_API_ADDR="+freeAddrs(t, 1)[0])
	if b, err := hc.CombinedOutput(); err == nil {
		t.Errorf("healthcheck against nothing succeeded: %s", b)
	}
}
