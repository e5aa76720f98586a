package api_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// stringConsts returns the string constants of the package in dir whose
// names start with prefix, by value, from its non-test source.
func stringConsts(t *testing.T, dir, prefix string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	fset := token.NewFileSet()
	for _, path := range paths {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, prefix) || i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						t.Fatal(err)
					}
					out[v] = name.Name
				}
			}
		}
	}
	return out
}

// TestEveryDomainCodeHasAConstant checks that every code grant can return
// and every policy reason code (the codes a client may see) has a constant
// of the same value here, so the CLI never needs a string literal; and
// likewise every request state and recording purpose. The
// domain packages are read as source: importing them would link them.
func TestEveryDomainCodeHasAConstant(t *testing.T) {
	here := stringConsts(t, ".", "Code")
	if len(here) < 50 {
		t.Fatalf("found %d codes in package api; the parse is broken", len(here))
	}
	for _, src := range []struct{ dir, prefix string }{{"../grant", "Code"}, {"../policy", "Reason"}, {"../sso", "Code"}} {
		theirs := stringConsts(t, src.dir, src.prefix)
		if len(theirs) < 10 {
			t.Fatalf("found %d codes in %s; the parse is broken", len(theirs), src.dir)
		}
		for v, name := range theirs {
			if _, ok := here[v]; !ok {
				t.Errorf("%s.%s = %q has no api constant", filepath.Base(src.dir), name, v)
			}
		}
	}
	for _, prefix := range []string{"State", "Purpose"} {
		ours, theirs := stringConsts(t, ".", prefix), stringConsts(t, "../grant", prefix)
		if len(theirs) < 3 {
			t.Fatalf("found %d %s constants in grant; the parse is broken", len(theirs), prefix)
		}
		for v, name := range theirs {
			if _, ok := ours[v]; !ok {
				t.Errorf("grant.%s = %q has no api constant", name, v)
			}
		}
	}
}
