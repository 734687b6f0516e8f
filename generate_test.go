package iotplatform_test

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestGeneratedCodeIsFresh regenerates gen/ into a temporary directory with
// the pinned tools and fails when the committed code differs: run
// `make generate` and commit.
func TestGeneratedCodeIsFresh(t *testing.T) {
	buf, err := filepath.Abs("bin/tools/buf")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(buf); err != nil {
		if os.Getenv("IOT_TEST_REQUIRE_SERVICES") == "1" {
			t.Fatalf("bin/tools/buf missing: run `make tools`")
		}
		t.Skip("bin/tools/buf missing: run `make tools` (make test does)")
	}
	out := t.TempDir()
	cmd := exec.Command(buf, "generate", "-o", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("buf generate: %v\n%s", err, b)
	}
	lint := exec.Command(buf, "lint")
	if b, err := lint.CombinedOutput(); err != nil {
		t.Fatalf("buf lint: %v\n%s", err, b)
	}
	fresh := tree(t, filepath.Join(out, "gen"))
	committed := tree(t, "gen")
	for name, want := range fresh {
		got, ok := committed[name]
		if !ok {
			t.Errorf("gen/%s is missing: run `make generate`", name)
		} else if !bytes.Equal(got, want) {
			t.Errorf("gen/%s is stale: run `make generate`", name)
		}
	}
	for name := range committed {
		if _, ok := fresh[name]; !ok {
			t.Errorf("gen/%s is not generated from proto/ any more: delete it (make generate)", name)
		}
	}
}

func tree(t *testing.T, root string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(root, path)
		files[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil && !strings.Contains(err.Error(), "no such file") {
		t.Fatal(err)
	}
	return files
}
