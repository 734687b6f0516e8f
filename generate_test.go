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

// TestGeneratedCodeIsFresh regenerates gen/, internal/gengrpc/ and
// openapi/openapi.json into a temporary directory with the pinned tools (buf,
// then internal/cmd/genpost) and fails when the committed code differs: run
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
	post := exec.Command("go", "run", "./internal/cmd/genpost", "-stage", filepath.Join(out, ".gen"), "-root", out)
	if b, err := post.CombinedOutput(); err != nil {
		t.Fatalf("genpost: %v\n%s", err, b)
	}
	for _, dir := range []string{"gen/iot", "internal/gengrpc", "openapi"} {
		fresh := tree(t, filepath.Join(out, dir))
		committed := tree(t, dir)
		if len(fresh) == 0 {
			t.Errorf("nothing generated into %s", dir)
		}
		for name, want := range fresh {
			got, ok := committed[name]
			if !ok {
				t.Errorf("%s/%s is missing: run `make generate`", dir, name)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s/%s is stale: run `make generate`", dir, name)
			}
		}
		for name := range committed {
			if _, ok := fresh[name]; !ok {
				t.Errorf("%s/%s is not generated from proto/ any more: delete it (make generate)", dir, name)
			}
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
