package issuance

import (
	"bufio"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// doorPackages may call ca's signing functions: ca itself and this door.
var doorPackages = []string{"ca", "issuance"}

// testSupport are packages that exist only for tests (they mint throwaway
// certificates for a test's own sshd with a test's own CA key); they may
// sign with x/crypto directly, never with ca.
var testSupport = []string{"internal/sshdtest", "internal/testkit", "issuance/issuancetest"}

// TestOnlyTheDoorSigns walks every non-test Go file of the module and fails
// if a package other than ca and issuance refers to a function of ca that
// signs a certificate (called or taken as a value, under any import name),
// or calls x/crypto's SignCert itself.
func TestOnlyTheDoorSigns(t *testing.T) {
	root, module := moduleRoot(t)
	signers := signingFuncs(t, filepath.Join(root, "ca"))
	for _, want := range []string{"SignUserCert", "SignHostCert"} {
		if !signers[want] {
			t.Fatalf("ca.%s is not found to sign: the scan of package ca is broken (found %v)", want, signers)
		}
	}
	// The door itself must be seen to sign, or the walk sees nothing.
	if got := references(t, filepath.Join(root, "issuance", "issuance.go"), module+"/ca", signers); len(got) == 0 {
		t.Fatal("issuance.go refers to no signing function of ca: the walk is broken")
	}
	if bad := violations(t, root, module, signers); len(bad) > 0 {
		t.Errorf("only packages %v may call ca's signing functions; go through issuance.Issuer instead:\n%s", doorPackages, strings.Join(bad, "\n"))
	}
}

// The walk finds a call however the import is named, and a function value;
// it ignores tests, the door, and ca's functions that do not sign.
func TestGuardFindsCalls(t *testing.T) {
	const module = "example.com/m"
	tests := []struct {
		name, path, src string
		want            int
	}{
		{name: "call", path: "a/a.go", src: `package a
import "example.com/m/ca"
func f() { ca.SignUserCert(nil, ca.UserCertSpec{}) }`, want: 1},
		{name: "renamed import, function value", path: "b/b.go", src: `package b
import sign "example.com/m/ca"
var f = sign.SignHostCert`, want: 1},
		{name: "dot import", path: "c/c.go", src: `package c
import . "example.com/m/ca"
func f() { SignHostCert(nil, HostCertSpec{}) }`, want: 1},
		{name: "a test file", path: "d/d_test.go", src: `package d
import "example.com/m/ca"
func f() { ca.SignUserCert(nil, ca.UserCertSpec{}) }`},
		{name: "the door", path: "issuance/x.go", src: `package issuance
import "example.com/m/ca"
func f() { ca.SignUserCert(nil, ca.UserCertSpec{}) }`},
		{name: "a helper of the door's is not the door", path: "issuance/issuancetest/x.go", src: `package issuancetest
import "example.com/m/ca"
func f() { ca.SignUserCert(nil, ca.UserCertSpec{}) }`, want: 1},
		{name: "a function that does not sign", path: "e/e.go", src: `package e
import "example.com/m/ca"
func f() { ca.NewSerial(nil) }`},
		{name: "signing with x/crypto directly", path: "g/g.go", src: `package g
import "golang.org/x/crypto/ssh"
func f(c *ssh.Certificate, s ssh.Signer) error { return c.SignCert(nil, s) }`, want: 1},
		{name: "x/crypto's SignCert in ca", path: "ca/ca.go", src: `package ca
import "golang.org/x/crypto/ssh"
func f(c *ssh.Certificate, s ssh.Signer) error { return c.SignCert(nil, s) }`},
		{name: "another package named ca", path: "f/f.go", src: `package f
import "example.com/other/ca"
func f() { ca.SignUserCert(nil, ca.UserCertSpec{}) }`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			path := filepath.Join(root, filepath.FromSlash(tt.path))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(tt.src), 0o644); err != nil {
				t.Fatal(err)
			}
			got := violations(t, root, module, map[string]bool{"SignUserCert": true, "SignHostCert": true})
			if len(got) != tt.want {
				t.Errorf("violations %q, want %d", got, tt.want)
			}
		})
	}
}

// moduleRoot returns the directory of the enclosing go.mod and its module
// path.
func moduleRoot(t *testing.T) (string, string) {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		f, err := os.Open(filepath.Join(dir, "go.mod"))
		if err == nil {
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if m, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "module "); ok {
					return dir, strings.Trim(strings.TrimSpace(m), `"`)
				}
			}
			t.Fatalf("%s/go.mod names no module", dir)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

// signingFuncs returns the top-level functions of the ca package in dir
// that sign a certificate: those that call the SignCert method, and those
// that call such a function, transitively.
func signingFuncs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	calls := map[string][]string{}
	signs := map[string]bool{}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fd, ok := d.(*ast.FuncDecl)
			if !ok || fd.Recv != nil || fd.Body == nil {
				continue
			}
			ast.Inspect(fd.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				switch fn := call.Fun.(type) {
				case *ast.Ident:
					calls[fd.Name.Name] = append(calls[fd.Name.Name], fn.Name)
				case *ast.SelectorExpr:
					if fn.Sel.Name == "SignCert" {
						signs[fd.Name.Name] = true
					}
				}
				return true
			})
		}
	}
	for changed := true; changed; {
		changed = false
		for fn, callees := range calls {
			if !signs[fn] && slices.ContainsFunc(callees, func(c string) bool { return signs[c] }) {
				signs[fn], changed = true, true
			}
		}
	}
	for fn := range signs {
		if !ast.IsExported(fn) {
			delete(signs, fn)
		}
	}
	return signs
}

// violations lists, as file:line: name, every reference to a signing
// function of module/ca in the non-test Go files under root outside the
// door's packages.
func violations(t *testing.T, root, module string, signers map[string]bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
			slices.Contains(doorPackages, filepath.ToSlash(filepath.Dir(rel))) {
			return nil
		}
		for _, ref := range references(t, path, module+"/ca", signers) {
			out = append(out, rel+":"+ref)
		}
		if slices.Contains(testSupport, filepath.ToSlash(filepath.Dir(rel))) {
			return nil
		}
		for _, ref := range certSigns(t, path) {
			out = append(out, rel+":"+ref)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// certSigns lists, as line: name, every call of a method named SignCert in
// the Go file path: x/crypto's (*ssh.Certificate).SignCert signs with any
// CA signer a package happens to hold, without going through ca at all.
func certSigns(t *testing.T, path string) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok && sel.Sel.Name == "SignCert" {
			out = append(out, fmt.Sprintf("%d: SignCert", fset.Position(n.Pos()).Line))
		}
		return true
	})
	return out
}

// references lists, as line: name, the references in the Go file path to a
// function in signers of the package importPath.
func references(t *testing.T, path, importPath string, signers map[string]bool) []string {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, imp := range f.Imports {
		if p, _ := strconv.Unquote(imp.Path.Value); p != importPath {
			continue
		}
		name := "ca"
		if imp.Name != nil {
			name = imp.Name.Name
		}
		if name == "_" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			var fn string
			switch x := n.(type) {
			case *ast.SelectorExpr:
				if id, ok := x.X.(*ast.Ident); ok && id.Name == name {
					fn = x.Sel.Name
				}
			case *ast.Ident:
				if name == "." {
					fn = x.Name
				}
			}
			if signers[fn] {
				out = append(out, fmt.Sprintf("%d: %s", fset.Position(n.Pos()).Line, fn))
			}
			return true
		})
	}
	return out
}
