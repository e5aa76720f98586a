package testkit

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ModulePath is the module whose packages CheckImports polices.
const ModulePath = "github.com/jitssh/jitssh"

// CheckImports fails t for every import, in the non-test Go files of dir,
// of a package of this module that allowed does not list, or of anything
// with sqlite in its path: it keeps a client-side package linkable into
// jit without the server.
func CheckImports(t testing.TB, dir string, allowed ...string) {
	t.Helper()
	ok := map[string]bool{}
	for _, a := range allowed {
		ok[ModulePath+"/"+a] = true
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, name), nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, ModulePath+"/") && !ok[path] || strings.Contains(path, "sqlite") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
