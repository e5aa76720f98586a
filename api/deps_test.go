package api_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCLILinksNoServer checks the promise of this package's split from
// apiserver: the engineer's binary, and this package, link neither the
// audit store (and its SQLite driver) nor policy, the lifecycle, the server
// or the daemon.
func TestCLILinksNoServer(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	forbidden := []string{
		"github.com/mattn/go-sqlite3",
		"github.com/jitssh/jitssh/audit",
		"github.com/jitssh/jitssh/grant",
		"github.com/jitssh/jitssh/policy",
		"github.com/jitssh/jitssh/daemon",
		"github.com/jitssh/jitssh/apiserver",
	}
	for _, pkg := range []string{"github.com/jitssh/jitssh/cmd/jit", "github.com/jitssh/jitssh/api"} {
		out, err := exec.Command(goBin, "list", "-tags", "sqlite_fts5", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		deps := strings.Fields(string(out))
		if len(deps) < 2 {
			t.Fatalf("go list -deps %s listed %q: too little to check", pkg, deps)
		}
		for _, dep := range deps {
			for _, bad := range forbidden {
				if dep == bad || strings.HasPrefix(dep, bad+"/") {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}
