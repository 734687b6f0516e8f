package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDocs_EveryFlagExists: every flag in a row of a docs flag table
// is a flag of `iotplatform serve` or `function`, and every IOT_* variable
// the README and docs/ name is one of theirs, one read from the environment
// only, one of iotctl's, or one a test harness reads: a
// renamed or removed setting cannot stay documented.
func TestDocs_EveryFlagExists(t *testing.T) {
	serveFlags, serveEnvs := helpNames(t, "serve")
	fnFlags, fnEnvs := helpNames(t, "function")
	envs := map[string]bool{}
	for _, m := range []map[string]bool{serveEnvs, fnEnvs} {
		for k := range m {
			envs[k] = true
		}
	}
	// Read without a flag: secrets (never on the command line), the log
	// format, and what iotctl and the test harnesses read (their sources
	// name them).
	for _, e := range append(envOnly, "IOT_KAFKA_SASL_PASSWORD", "IOT_OPENSEARCH_PASSWORD", "IOT_LOG_FORMAT") {
		envs[e] = true
	}
	var readers []string
	for _, g := range []string{"../cmd/iotctl/*.go", "*_test.go", "../scripts/*.sh", "../sdk/ts/test/*.ts", "../sdk/python/tests/*.py"} {
		m, _ := filepath.Glob(g)
		readers = append(readers, m...)
	}
	envRe := regexp.MustCompile(`IOT_[A-Z0-9_]+`)
	for _, f := range readers {
		if f == "docs_flags_test.go" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range envRe.FindAllString(string(b), -1) {
			envs[e] = true
		}
	}
	docs, _ := filepath.Glob("../docs/*.md")
	docs = append(docs, "../README.md")
	flagRow := regexp.MustCompile("(?m)^\\| `--([a-z0-9-]+)")
	checkedFlags, checkedEnvs := 0, 0
	for _, d := range docs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if filepath.Base(d) == "BENCHMARKS.md" {
			continue // records of past runs, with the flags of their time
		}
		for _, m := range flagRow.FindAllStringSubmatch(string(b), -1) {
			checkedFlags++
			if !serveFlags[m[1]] && !fnFlags[m[1]] {
				t.Errorf("%s documents --%s, which neither `iotplatform serve -h` nor `function -h` lists", filepath.Base(d), m[1])
			}
		}
		for _, e := range envRe.FindAllString(string(b), -1) {
			checkedEnvs++
			if !envs[e] && !strings.HasPrefix(e, "IOT_TEST_") && !strings.HasSuffix(e, "_") {
				t.Errorf("%s names %s, which the binary does not read", filepath.Base(d), e)
			}
		}
	}
	if checkedFlags < 50 || checkedEnvs < 50 {
		t.Fatalf("only %d flags and %d variables checked: did the docs move?", checkedFlags, checkedEnvs)
	}
}
