// Command genpost places what `buf generate` wrote into the staging directory
// .gen/ (see buf.gen.yaml); `make generate` runs it after buf:
//
//   - the Go messages (*.pb.go) and Connect code (*connect/) go to gen/, the
//     module github.com/iotplatform/iotplatform/gen that the server and the Go
//     SDK share. Their blank import of the google.api annotations package is
//     dropped so that module depends on protobuf and connect only (the
//     descriptors still name google/api/annotations.proto; the server links
//     the annotations, the SDK does not need them);
//   - the grpc-go (*_grpc.pb.go) and grpc-gateway (*.pb.gw.go) code goes to
//     internal/gengrpc/<pkg>grpc, qualified with the gen/ package of its
//     messages (only the server speaks gRPC through grpc-go and REST);
//   - the Swagger 2.0 document of protoc-gen-openapiv2 is converted to the
//     OpenAPI 3.1 document openapi/openapi.json (see openapi.go).
//
// Usage: go run ./internal/cmd/genpost [-stage .gen] [-root .]
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/ast"
	"go/format"
	"go/parser"
	"go/printer"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

const (
	genModule = "github.com/iotplatform/iotplatform/gen"
	grpcDir   = "internal/gengrpc"
)

func main() {
	stage := flag.String("stage", ".gen", "directory buf generated into")
	root := flag.String("root", ".", "repository root to write gen/, internal/gengrpc/ and openapi/ under")
	flag.Parse()
	if err := run(*stage, *root); err != nil {
		fmt.Fprintln(os.Stderr, "genpost:", err)
		os.Exit(1)
	}
}

func run(stage, root string) error {
	version, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		// -root may be a fresh output directory (the freshness test).
		if version, err = os.ReadFile("VERSION"); err != nil {
			return fmt.Errorf("read VERSION: %w", err)
		}
	}
	if err := splitGo(filepath.Join(stage, "go"), root); err != nil {
		return err
	}
	swagger, err := os.ReadFile(filepath.Join(stage, "openapi", "iotplatform.swagger.json"))
	if err != nil {
		return err
	}
	doc, err := convertOpenAPI(swagger, strings.TrimSpace(string(version)))
	if err != nil {
		return fmt.Errorf("convert OpenAPI: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "openapi"), 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(root, "openapi", "openapi.json"), doc, 0o644)
}

// splitGo writes the staged Go files to gen/ and internal/gengrpc/,
// replacing what was generated there before (gen/go.mod and gen/go.sum stay).
func splitGo(src, root string) error {
	for _, dir := range []string{filepath.Join(root, "gen", "iot"), filepath.Join(root, grpcDir)} {
		if err := os.RemoveAll(dir); err != nil {
			return err
		}
	}
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		rel = filepath.ToSlash(rel)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(rel, "_grpc.pb.go") || strings.HasSuffix(rel, ".pb.gw.go"):
			return writeGRPC(src, root, rel, b)
		case strings.HasSuffix(rel, ".pb.go"):
			b = bytes.Replace(b, []byte("\t_ \"google.golang.org/genproto/googleapis/api/annotations\"\n"), nil, 1)
			return write(filepath.Join(root, "gen", rel), b)
		default:
			return write(filepath.Join(root, "gen", rel), b)
		}
	})
}

// writeGRPC moves a grpc-go or grpc-gateway file of the package in
// path.Dir(rel) (e.g. iot/core/v1, package corev1) into package corev1grpc,
// qualifying the identifiers it uses from the messages' package.
func writeGRPC(src, root, rel string, b []byte) error {
	dir := path.Dir(rel)
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, b, parser.ParseComments)
	if err != nil {
		return err
	}
	msgPkg := f.Name.Name
	names, err := declaredNames(filepath.Join(src, filepath.FromSlash(dir)))
	if err != nil {
		return err
	}
	for _, id := range f.Unresolved {
		if names[id.Name] {
			id.Name = msgPkg + "." + id.Name
		}
	}
	f.Name.Name = msgPkg + "grpc"
	var out bytes.Buffer
	if err := printer.Fprint(&out, fset, f); err != nil {
		return err
	}
	imp := fmt.Sprintf("import (\n\t%s %q\n", msgPkg, genModule+"/"+dir)
	src2 := bytes.Replace(out.Bytes(), []byte("import (\n"), []byte(imp), 1)
	formatted, err := format.Source(src2)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	return write(filepath.Join(root, grpcDir, msgPkg+"grpc", path.Base(rel)), formatted)
}

// declaredNames returns the top-level names the *.pb.go files in dir declare.
func declaredNames(dir string) (map[string]bool, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pb.go"))
	if err != nil {
		return nil, err
	}
	names := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_grpc.pb.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if d.Recv == nil {
					names[d.Name.Name] = true
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						names[s.Name.Name] = true
					case *ast.ValueSpec:
						for _, n := range s.Names {
							names[n.Name] = true
						}
					}
				}
			}
		}
	}
	return names, nil
}

func write(name string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return err
	}
	return os.WriteFile(name, b, 0o644)
}
