package testkit

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// importsTB records CheckImports' Errorf calls.
type importsTB struct {
	testing.TB
	errs []string
}

func (*importsTB) Helper() {}

func (r *importsTB) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

func TestCheckImports(t *testing.T) {
	tests := []struct {
		name, src string
		allowed   []string
		want      string // "" when nothing is reported
	}{
		{name: "allowed", src: `import "github.com/jitssh/jitssh/api"`, allowed: []string{"api"}},
		{name: "server package", src: `import "github.com/jitssh/jitssh/audit"`, allowed: []string{"api"}, want: "a.go imports github.com/jitssh/jitssh/audit"},
		{name: "sqlite", src: `import _ "github.com/mattn/go-sqlite3"`, want: "go-sqlite3"},
		{name: "standard library", src: `import "net/http"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, src := range map[string]string{"a.go": "package a\n" + tt.src + "\n", "a_test.go": "package a\nimport \"github.com/jitssh/jitssh/grant\"\n"} {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r := &importsTB{TB: t}
			CheckImports(r, dir, tt.allowed...)
			got := strings.Join(r.errs, "\n")
			if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
				t.Errorf("reported %q, want %q (tests' imports never count)", got, tt.want)
			}
		})
	}
}
