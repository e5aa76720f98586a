package hostjoin

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImportsStayClientSide keeps the package linkable into jit without
// the server: of this module it may import only the API's client and wire
// types, the atomic file write and the one public-key rule.
func TestImportsStayClientSide(t *testing.T) {
	allowed := map[string]bool{
		"github.com/jitssh/jitssh/api":        true,
		"github.com/jitssh/jitssh/sshkey":     true,
		"github.com/jitssh/jitssh/atomicfile": true,
	}
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(path, "github.com/jitssh/jitssh/") && !allowed[path] || strings.Contains(path, "sqlite") {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
