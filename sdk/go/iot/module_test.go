package iot_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestModule_FreshProjectGetsNoServerDependencies builds a program in a new
// module outside the repository that requires the SDK by its module path
// (replaced by this directory with the commands docs/SDK.md gives) and checks that
// its module graph and go.sum hold connect and protobuf but not the server
// module, Kafka, SQLite, OpenSearch or gRPC.
func TestModule_FreshProjectGetsNoServerDependencies(t *testing.T) {
	sdkDir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	genDir := filepath.Join(sdkDir, "..", "..", "gen")
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("main.go", `package main

import (
	"context"
	"fmt"

	corev1 "github.com/iotplatform/iotplatform/gen/iot/core/v1"
	"github.com/iotplatform/iotplatform/sdk/go/iot"
)

func main() {
	c := iot.New("http://127.0.0.1:1")
	_, err := c.Core.ListDevices(context.Background(), &corev1.ListDevicesRequest{})
	fmt.Println(err != nil)
}
`)
	goCmd := func(args ...string) string {
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// The commands of docs/SDK.md ("require them from a checkout").
	goCmd("mod", "init", "example.com/producer")
	goCmd("mod", "edit", "-require=github.com/iotplatform/iotplatform/sdk/go@v0.0.0",
		"-replace=github.com/iotplatform/iotplatform/sdk/go="+sdkDir,
		"-replace=github.com/iotplatform/iotplatform/gen="+genDir)
	goCmd("mod", "tidy")
	goCmd("build", "-o", filepath.Join(dir, "producer"), ".")
	if out, err := exec.Command(filepath.Join(dir, "producer")).CombinedOutput(); err != nil || strings.TrimSpace(string(out)) != "true" {
		t.Fatalf("the program did not run: %v %s", err, out)
	}
	mods := goCmd("list", "-m", "all")
	sum, err := os.ReadFile(filepath.Join(dir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"connectrpc.com/connect", "google.golang.org/protobuf", "github.com/iotplatform/iotplatform/gen"} {
		if !strings.Contains(mods, want) {
			t.Errorf("go list -m all lacks %s:\n%s", want, mods)
		}
	}
	for _, banned := range []string{"github.com/iotplatform/iotplatform ", "confluent-kafka-go", "sqlite", "opensearch",
		"google.golang.org/grpc", "grpc-gateway", "genproto", "golang.org/x/net", "pgx", "mochi-mqtt"} {
		if strings.Contains(mods+"\n", banned) || strings.Contains(string(sum), banned) {
			t.Errorf("the SDK pulls in %s:\ngo list -m all:\n%s\ngo.sum:\n%s", banned, mods, sum)
		}
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(mods), "\n") {
		lines = append(lines, strings.Fields(l)[0])
	}
	t.Logf("modules of a fresh SDK user: %s", strings.Join(lines, ", "))
}

// TestModule_RequiresOnlyConnectAndProtobuf reads the SDK's and the
// generated code's go.mod: their requirements are connect, protobuf and
// the gen module.
func TestModule_RequiresOnlyConnectAndProtobuf(t *testing.T) {
	allowed := []string{"connectrpc.com/connect", "google.golang.org/protobuf", "github.com/iotplatform/iotplatform/gen"}
	for _, gomod := range []string{"../go.mod", "../../../gen/go.mod"} {
		out, err := exec.Command("go", "mod", "edit", "-json", gomod).Output()
		if err != nil {
			t.Fatal(err)
		}
		var mod struct{ Require []struct{ Path string } }
		if err := json.Unmarshal(out, &mod); err != nil {
			t.Fatal(err)
		}
		if len(mod.Require) == 0 {
			t.Errorf("%s requires nothing", gomod)
		}
		for _, r := range mod.Require {
			if !slices.Contains(allowed, r.Path) {
				t.Errorf("%s requires %s", gomod, r.Path)
			}
		}
	}
}
