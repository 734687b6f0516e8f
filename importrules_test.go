package iotplatform_test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/iotplatform/iotplatform/"

// contracts are the backend contract packages; everything below them is a
// backend or a conformance suite.
var contracts = []string{"internal/bus", "internal/store", "internal/registry"}

// importRule refuses, for production files in dirs under from, imports
// whose module-relative path is matched by bad.
type importRule struct {
	why  string
	from func(dir string) bool
	bad  func(dir, imp string) bool
}

func under(p, root string) bool { return p == root || strings.HasPrefix(p, root+"/") }

// top is the first two path elements (services/ingest of services/ingest/ingesttest).
func top(p string) string {
	parts := strings.SplitN(p, "/", 3)
	if len(parts) < 2 {
		return p
	}
	return parts[0] + "/" + parts[1]
}

func isBackend(imp string) bool {
	for _, c := range contracts {
		if strings.HasPrefix(imp, c+"/") {
			return true
		}
	}
	return false
}

var importRules = []importRule{
	{
		why:  "services and gateways depend on contracts, never on a backend (chosen at run time in app/)",
		from: func(d string) bool { return under(d, "services") || under(d, "gateway") },
		bad:  func(_, imp string) bool { return isBackend(imp) },
	},
	{
		why: "a contract owns its types and errors: it imports no other contract and no backend",
		from: func(d string) bool {
			for _, c := range contracts {
				if d == c {
					return true
				}
			}
			return false
		},
		bad: func(d, imp string) bool {
			for _, c := range contracts {
				if c != d && under(imp, c) {
					return true
				}
			}
			return isBackend(imp)
		},
	},
	{
		why:  "services do not import each other (a service's own test helpers excepted)",
		from: func(d string) bool { return under(d, "services") },
		bad:  func(d, imp string) bool { return under(imp, "services") && top(imp) != top(d) },
	},
	{
		why:  "gateways do not import each other: shared edge code lives in internal/authn, internal/apierror or services/ingest",
		from: func(d string) bool { return under(d, "gateway") },
		bad:  func(d, imp string) bool { return under(imp, "gateway") && top(imp) != top(d) },
	},
	{
		why:  "every import points down: nothing below the composition root imports app/ or cmd/",
		from: func(d string) bool { return under(d, "internal") || under(d, "services") || under(d, "gateway") },
		bad:  func(_, imp string) bool { return under(imp, "app") || under(imp, "cmd") },
	},
}

// TestImportRules checks the import rules of docs/ARCHITECTURE.md on every
// production (non-test) Go file of the module. It runs in `make lint`.
func TestImportRules(t *testing.T) {
	fset := token.NewFileSet()
	files := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "node_modules", ".venv", "testdata", "tools", "bin":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(path))
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		for _, is := range f.Imports {
			imp, _ := strconv.Unquote(is.Path.Value)
			if !strings.HasPrefix(imp, module) {
				continue
			}
			imp = strings.TrimPrefix(imp, module)
			for _, r := range importRules {
				if r.from(dir) && r.bad(dir, imp) {
					t.Errorf("%s imports %s: %s", path, imp, r.why)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("only %d Go files checked: is the test running at the module root?", files)
	}
}

// TestImportRules_CatchViolations: each rule refuses the import it exists
// for (so a rule that matches nothing cannot pass silently).
func TestImportRules_CatchViolations(t *testing.T) {
	for _, tc := range []struct{ dir, imp string }{
		{"services/pipeline", "internal/bus/buskafka"},
		{"services/query", "internal/store/storeopensearch"},
		{"services/ingest/ingesttest", "internal/bus/busembedded"},
		{"gateway/ws", "internal/registry/registrysql"},
		{"internal/store", "internal/bus"},
		{"services/query", "services/core"},
		{"gateway/ws", "gateway/httpgw"},
		{"internal/authn", "app"},
	} {
		caught := false
		for _, r := range importRules {
			caught = caught || (r.from(tc.dir) && r.bad(tc.dir, tc.imp))
		}
		if !caught {
			t.Errorf("%s importing %s is not refused", tc.dir, tc.imp)
		}
	}
	for _, tc := range []struct{ dir, imp string }{
		{"services/ingest", "internal/bus"},
		{"services/ingest/ingesttest", "services/ingest"},
		{"gateway/ws", "services/ingest"},
		{"internal/bus/buskafka", "internal/registry"},
	} {
		for _, r := range importRules {
			if r.from(tc.dir) && r.bad(tc.dir, tc.imp) {
				t.Errorf("%s importing %s is refused (%s)", tc.dir, tc.imp, r.why)
			}
		}
	}
}
