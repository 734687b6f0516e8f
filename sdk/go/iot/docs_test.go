package iot_test

import (
	"os"
	"strings"
	"testing"
)

// TestDocs_StreamingExampleIsTheTestedExample: the streaming example in
// docs/SDK.md is Example_streamIngestWithAcks, line for line, so the
// documented code is the code the tests run.
func TestDocs_StreamingExampleIsTheTestedExample(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/SDK.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	const marker = "<!-- sdk/go/iot/example_test.go Example_streamIngestWithAcks -->\n```go\n"
	_, block, ok := strings.Cut(string(doc), marker)
	if !ok {
		t.Fatal("docs/SDK.md lacks the streaming example marker")
	}
	block, _, _ = strings.Cut(block, "```")
	_, body, ok := strings.Cut(string(src), "func Example_streamIngestWithAcks() {")
	if !ok {
		t.Fatal("Example_streamIngestWithAcks is gone")
	}
	var lines int
	for _, l := range strings.Split(block, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "// batch 1") {
			continue
		}
		i := strings.Index(body, l)
		if i < 0 {
			t.Fatalf("docs/SDK.md's streaming example has %q, which Example_streamIngestWithAcks does not have (in this order)", l)
		}
		body = body[i+len(l):]
		lines++
	}
	if lines < 20 {
		t.Fatalf("only %d lines of the example in docs/SDK.md", lines)
	}
}
