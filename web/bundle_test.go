package web

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestBundleIsFresh rebuilds the console from src/ with the pinned esbuild
// (web/package-lock.json) into a temporary directory and fails when the
// committed dist/ differs: run `make web` and commit dist/. It also
// type-checks the sources (tsc --noEmit) against the SDK's generated code.
func TestBundleIsFresh(t *testing.T) {
	node, err := exec.LookPath("node")
	if err == nil {
		_, err = os.Stat("node_modules/esbuild/package.json")
	}
	if err != nil {
		if os.Getenv("IOT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("node or web/node_modules missing: run scripts/install-console-test-tools.sh")
		}
		t.Skip("node or web/node_modules missing: run scripts/install-console-test-tools.sh (make test does)")
	}
	out := t.TempDir()
	if b, err := exec.Command(node, "build.mjs", "--out", out).CombinedOutput(); err != nil {
		t.Fatalf("node build.mjs: %v\n%s", err, b)
	}
	fresh, committed := files(t, out), files(t, "dist")
	for name, want := range fresh {
		got, ok := committed[name]
		if !ok {
			t.Errorf("web/dist/%s is missing: run `make web` and commit web/dist", name)
		} else if !bytes.Equal(got, want) {
			t.Errorf("web/dist/%s is stale: run `make web` and commit web/dist", name)
		}
	}
	for name := range committed {
		if _, ok := fresh[name]; !ok {
			t.Errorf("web/dist/%s is not built any more: run `make web` (it empties dist first)", name)
		}
	}
	if b, err := exec.Command(node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json").CombinedOutput(); err != nil {
		t.Errorf("tsc: %v\n%s", err, b)
	}
}

func files(t *testing.T, root string) map[string][]byte {
	t.Helper()
	m := map[string][]byte{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		m[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDistHasTheConsole checks the embedded files the API server needs.
func TestDistHasTheConsole(t *testing.T) {
	index, err := fs.ReadFile(Dist(), "index.html")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(index, []byte(`<meta name="iot-console" content="{}">`)) {
		t.Error("index.html lacks the settings placeholder app/console.go fills in")
	}
	if bytes.Contains(index, []byte("{{")) {
		t.Error("index.html still has a build placeholder")
	}
	js, _ := fs.Glob(Dist(), "assets/app-*.js")
	css, _ := fs.Glob(Dist(), "assets/app-*.css")
	if len(js) != 1 || len(css) != 1 {
		t.Fatalf("want one app JS and one CSS bundle, got %v %v", js, css)
	}
	for _, f := range append(js, css...) {
		if !bytes.Contains(index, []byte("/"+f)) {
			t.Errorf("index.html does not load %s", f)
		}
	}
}
