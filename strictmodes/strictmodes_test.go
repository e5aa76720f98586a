package strictmodes

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	// other is a uid that is neither the checker's nor root. As root the
	// test chowns paths to it; otherwise the checker runs as other and the
	// test's own files count as another user's.
	const other = 4242
	tests := []struct {
		name string
		// setup makes the tree under root (a fresh 0700 directory) and
		// returns the entries to check.
		setup func(t *testing.T, root string) []Entry
		// wantPath is the refused path, relative to root ("." is root);
		// "" means accepted.
		wantPath string
		wantFix  string // with PATH for the refused path
	}{
		{name: "safe tree", setup: tree(0o700, 0o600), wantPath: ""},
		{name: "read by others is not strict modes' concern", setup: tree(0o755, 0o644), wantPath: ""},
		{name: "data dir 0777", setup: tree(0o777, 0o600), wantPath: "data", wantFix: "chmod go-w PATH"},
		{name: "data dir group-writable", setup: tree(0o770, 0o600), wantPath: "data", wantFix: "chmod go-w PATH"},
		{name: "policy 0666", setup: tree(0o700, 0o666), wantPath: "data/policy.yaml", wantFix: "chmod go-w PATH"},
		{name: "policy 0602", setup: tree(0o700, 0o602), wantPath: "data/policy.yaml", wantFix: "chmod go-w PATH"},
		{name: "missing optional", setup: func(t *testing.T, root string) []Entry {
			return append(tree(0o700, 0o600)(t, root), Entry{Path: filepath.Join(root, "data", "db-wal"), What: "database", Optional: true})
		}, wantPath: ""},
		{name: "loose optional present", setup: func(t *testing.T, root string) []Entry {
			es := tree(0o700, 0o600)(t, root)
			p := filepath.Join(root, "data", "db-wal")
			write(t, p, 0o666)
			return append(es, Entry{Path: p, What: "database", Optional: true})
		}, wantPath: "data/db-wal", wantFix: "chmod go-w PATH"},
		{name: "parent 0777 without sticky", setup: func(t *testing.T, root string) []Entry {
			es := tree(0o700, 0o600)(t, root)
			chmod(t, root, 0o777)
			return es
		}, wantPath: ".", wantFix: "chmod go-w PATH"},
		{name: "parent 0777 sticky", setup: func(t *testing.T, root string) []Entry {
			es := tree(0o700, 0o600)(t, root)
			chmod(t, root, 0o777|os.ModeSticky)
			return es
		}, wantPath: ""},
		{name: "data dir 0777 sticky", setup: tree(0o777|os.ModeSticky, 0o600), wantPath: "data", wantFix: "chmod go-w PATH"},
		{name: "symlinked data dir in a loose directory", setup: func(t *testing.T, root string) []Entry {
			real := filepath.Join(root, "loose", "real")
			if err := os.MkdirAll(real, 0o700); err != nil {
				t.Fatal(err)
			}
			chmod(t, filepath.Join(root, "loose"), 0o777)
			link := filepath.Join(root, "link")
			if err := os.Symlink(real, link); err != nil {
				t.Fatal(err)
			}
			return []Entry{{Path: link, What: "data directory"}}
		}, wantPath: "loose", wantFix: "chmod go-w PATH"},
		{name: "policy owned by another user", setup: func(t *testing.T, root string) []Entry {
			es := tree(0o700, 0o600)(t, root)
			if os.Geteuid() == 0 {
				if err := os.Chown(filepath.Join(root, "data", "policy.yaml"), other, other); err != nil {
					t.Fatal(err)
				}
			}
			return es
		}, wantPath: "data/policy.yaml", wantFix: "chown NAME PATH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			if err := os.Mkdir(root, 0o700); err != nil {
				t.Fatal(err)
			}
			entries := tc.setup(t, root)
			c := ForProcess()
			if os.Geteuid() != 0 {
				c.UID = other
				if tc.wantPath == "" || !strings.HasPrefix(tc.wantFix, "chown") {
					c.UID = os.Geteuid()
				}
			}
			err := c.Check(entries...)
			if tc.wantPath == "" {
				if err != nil {
					t.Fatalf("Check: %v, want accepted", err)
				}
				return
			}
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("Check: %v, want a strict modes refusal of %s", err, tc.wantPath)
			}
			want := filepath.Join(root, tc.wantPath)
			fix := strings.ReplaceAll(tc.wantFix, "PATH", want)
			fix = strings.ReplaceAll(fix, "NAME", chownName(c.UID))
			if se.Path != want || se.Fix != fix || !strings.Contains(err.Error(), want) || !strings.HasSuffix(err.Error(), "run "+fix) {
				t.Errorf("Check: %v (path %s, fix %q), want %s refused with fix %q", err, se.Path, se.Fix, want, fix)
			}
		})
	}
}

// TestCheckAcceptsStickyTmp checks what the daemon's tests rely on: a data
// directory below a world-writable, sticky /tmp is accepted.
func TestCheckAcceptsStickyTmp(t *testing.T) {
	fi, err := os.Stat(os.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSticky == 0 {
		t.Skipf("%s is not sticky (mode %v)", os.TempDir(), fi.Mode())
	}
	dir := t.TempDir()
	if err := ForProcess().Check(Entry{Path: dir, What: "data directory"}); err != nil {
		t.Fatalf("Check(%s): %v", dir, err)
	}
}

// tree makes root/data (dirMode) holding policy.yaml (fileMode) and returns
// both as entries.
func tree(dirMode, fileMode os.FileMode) func(t *testing.T, root string) []Entry {
	return func(t *testing.T, root string) []Entry {
		data := filepath.Join(root, "data")
		if err := os.Mkdir(data, 0o700); err != nil {
			t.Fatal(err)
		}
		policy := filepath.Join(data, "policy.yaml")
		write(t, policy, fileMode)
		chmod(t, data, dirMode)
		return []Entry{{Path: data, What: "data directory"}, {Path: policy, What: "policy file"}}
	}
}

func write(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	chmod(t, path, mode)
}

// chmod sets mode exactly, whatever the umask.
func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}
