package app

import (
	"flag"
	"slices"
	"strings"
	"testing"

	"github.com/iotplatform/iotplatform/internal/bus/buskafka"
	"github.com/iotplatform/iotplatform/internal/envflag"
)

// everyRoleSet lists every non-empty subset of the roles.
func everyRoleSet() []Roles {
	var out []Roles
	for mask := 1; mask < 1<<len(AllRoles); mask++ {
		s := Roles{}
		for i, r := range AllRoles {
			if mask&(1<<i) != 0 {
				s[r] = true
			}
		}
		out = append(out, s)
	}
	return out
}

// TestModules_EveryRoleSetStartsDependenciesFirst: for every role set the
// module map yields an order in which each module comes after everything
// it depends on, every role has its module, and the API server is last.
func TestModules_EveryRoleSetStartsDependenciesFirst(t *testing.T) {
	for _, roles := range everyRoleSet() {
		a := &App{roles: roles}
		mods := a.modules()
		order, err := moduleOrder(mods, a.targets())
		if err != nil {
			t.Fatalf("roles %s: %v", roles, err)
		}
		pos := map[moduleName]int{}
		for i, m := range order {
			if _, dup := pos[m]; dup {
				t.Fatalf("roles %s: %s twice in %v", roles, m, order)
			}
			pos[m] = i
		}
		for _, m := range order {
			for _, d := range mods[m].deps {
				if p, ok := pos[d]; !ok || p > pos[m] {
					t.Errorf("roles %s: %s starts before its dependency %s: %v", roles, m, d, order)
				}
			}
		}
		for r := range roles {
			if _, ok := pos[moduleName(r)]; !ok {
				t.Errorf("roles %s: role %s has no module in %v", roles, r, order)
			}
		}
		if order[len(order)-1] != modServer {
			t.Errorf("roles %s: the API server must start last: %v", roles, order)
		}
		if !roles.Has(RoleCore) && slices.Contains(order, modCore) {
			t.Errorf("roles %s: core module started without the core role", roles)
		}
	}
}

// TestModules_RefusesCyclesAndUnknownModules: a map with a cycle or a
// dependency nobody provides is refused, naming the modules.
func TestModules_RefusesCyclesAndUnknownModules(t *testing.T) {
	mods := map[moduleName]module{"a": {deps: []moduleName{"b"}}, "b": {deps: []moduleName{"a"}}}
	if _, err := moduleOrder(mods, []moduleName{"a"}); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Fatalf("cycle: %v", err)
	}
	mods = map[moduleName]module{"a": {deps: []moduleName{"nope"}}}
	if _, err := moduleOrder(mods, []moduleName{"a"}); err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown dependency: %v", err)
	}
}

// TestModules_FunctionModeNeedsNoTLSNorBus: function mode runs registry,
// auth, limits, telemetry (tracing, when configured), api and the
// function, nothing else.
func TestModules_FunctionModeNeedsNoTLSNorBus(t *testing.T) {
	a := &App{roles: Roles{RoleCore: true}}
	order, err := moduleOrder(a.functionModules(), []moduleName{modFunction})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(order)
	want := []moduleName{modAPI, modAuth, modFunction, modLimits, modRegistry, modTelemetry}
	if !slices.Equal(order, want) {
		t.Fatalf("function mode modules %v, want %v", order, want)
	}
}

// TestConfig_EmbeddedBusRefusesSplitRoles: ingest without the pipeline (or
// the reverse) on the embedded bus refuses to start naming --roles and
// --kafka-brokers; with Kafka, or with both roles, it starts.
func TestConfig_EmbeddedBusRefusesSplitRoles(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
	}{
		{[]string{"--roles", "core,ingest,query"}, false},
		{[]string{"--roles", "pipeline"}, false},
		{[]string{"--roles", "ingest"}, false},
		{[]string{"--roles", "core,query"}, true},
		{[]string{"--roles", "ingest,pipeline"}, true},
		{[]string{"--roles", "all"}, true},
		{[]string{"--roles", "ingest", "--kafka-brokers", "127.0.0.1:9092"}, true},
	} {
		c, err := ParseConfig(tc.args...)
		if err != nil {
			t.Fatal(err)
		}
		err = c.Validate()
		if slices.Contains(tc.args, "--kafka-brokers") && !buskafka.Available {
			continue // a CGO_ENABLED=0 build has no Kafka bus
		}
		if tc.ok && err != nil {
			t.Errorf("%v: %v", tc.args, err)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), "IOT_ROLES") || !strings.Contains(err.Error(), "--kafka-brokers (IOT_KAFKA_BROKERS)")) {
			t.Errorf("%v: %v, want a refusal naming --roles and --kafka-brokers", tc.args, err)
		}
	}
}

// TestConfig_BadValuesNameTheFlagAndVariable: values that parse but make
// no sense refuse to start, naming the flag and its variable.
func TestConfig_BadValuesNameTheFlagAndVariable(t *testing.T) {
	for _, tc := range []struct{ flag, value string }{
		{"opensearch-replicas", "-1"}, {"opensearch-shards", "0"}, {"opensearch-retention-settle", "0s"}, {"kafka-partitions", "0"}, {"mqtt-queue", "0"},
		{"ingest-max-batch", "0"}, {"wal-max-backlog", "0"}, {"query-poll-interval", "0s"}, {"embedded-bus", "tape"},
		{"store", "tape"}, {"api-max-body", "0"}, {"shutdown-timeout", "0s"}, {"user-token-ttl", "-1s"},
		{"registry-cache-entries", "-1"}, {"ingest-publish-timeout", "0s"}, {"ws-idle-timeout", "0s"},
		{"mqtt-outbound-queue", "0"}, {"mqtt-read-buffer", "63"}, {"gogc", "-2"}, {"gogc", "-1"},
		{"memory-limit", "lots"}, {"memory-limit", "-1GiB"}, {"memory-limit", "3GB"},
	} {
		c, err := ParseConfig("--"+tc.flag, tc.value)
		if err != nil {
			t.Fatalf("--%s %s: %v", tc.flag, tc.value, err)
		}
		err = c.Validate()
		if err == nil || !strings.Contains(err.Error(), envflag.Name(tc.flag)) {
			t.Errorf("--%s %s: %v, want an error naming %s", tc.flag, tc.value, err, envflag.Name(tc.flag))
		}
	}
}

// TestConfig_EveryFlagHasItsVariable: every serve flag is documented with
// its IOT_* variable, named after the flag.
func TestConfig_EveryFlagHasItsVariable(t *testing.T) {
	var c Config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	c.RegisterFlags(fs)
	n := 0
	fs.VisitAll(func(f *flag.Flag) {
		n++
		if want := "($" + envflag.EnvName(f.Name) + ")"; !strings.HasSuffix(f.Usage, want) {
			t.Errorf("--%s: usage %q does not end with %s", f.Name, f.Usage, want)
		}
	})
	if n < 50 {
		t.Fatalf("only %d flags registered", n)
	}
}
