package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// bashBlocks returns the ```bash blocks of the section of a document (path
// from the repository root, e.g. "README.md" or "docs/RULES.md") whose
// heading line starts with heading, up to the next "## " heading: the
// copy-paste commands that the doc tests run as written.
func bashBlocks(t *testing.T, path, heading string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", path))
	if err != nil {
		t.Fatal(err)
	}
	s := "\n" + string(b)
	i := strings.Index(s, "\n"+heading)
	if i < 0 {
		t.Fatalf("%s has no section %q", path, heading)
	}
	s = s[i+1:]
	if j := strings.Index(s[3:], "\n## "); j >= 0 {
		s = s[:j+3]
	}
	var out []string
	for {
		a := strings.Index(s, "```bash\n")
		if a < 0 {
			return out
		}
		s = s[a+len("```bash\n"):]
		e := strings.Index(s, "```")
		out = append(out, s[:e])
		s = s[e+3:]
	}
}
