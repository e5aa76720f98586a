package hostjoin_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/hostjoin"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

// testRoot is a target's root made by a test: a minimal sshd_config that
// includes ROOT/etc/ssh/sshd_config.d/*.conf (as Debian's does) and a host
// key made by ssh-keygen.
type testRoot struct {
	layout  hostjoin.Layout
	hostKey ssh.PublicKey
}

func newTestRoot(t *testing.T) testRoot {
	t.Helper()
	return newTestRootWith(t, "ed25519")
}

// newTestRootWith is newTestRoot with a host key of ssh-keygen type
// keyType at the default host key's path.
func newTestRootWith(t *testing.T, keyType string) testRoot {
	t.Helper()
	sshdtest.Require(t, "sshd", "ssh-keygen")
	root := t.TempDir()
	// sshd runs the principals command as nobody: the root and the test's
	// own temporary directory above it must let others through.
	for _, d := range []string{root, filepath.Dir(root)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	l, err := hostjoin.NewLayout(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.Path("/etc/ssh/sshd_config.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	key := l.Path(hostjoin.DefaultHostKey)
	if out, err := exec.Command(sshdtest.Path("ssh-keygen"), "-q", "-t", keyType, "-N", "", "-C", "test host", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	cfg := strings.Join([]string{
		"Include " + l.Path("/etc/ssh/sshd_config.d") + "/*.conf",
		"HostKey " + key,
		"PidFile " + l.Path(hostjoin.PIDFile),
		"UsePAM no",
		"StrictModes no",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"AuthorizedKeysFile none",
		"PermitRootLogin prohibit-password",
		"LogLevel VERBOSE",
		"PrintMotd no",
		"SetEnv SHLVL=1",
		"",
	}, "\n")
	if err := os.WriteFile(l.Path(hostjoin.SSHDConfig), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(l.Path("/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return testRoot{layout: l, hostKey: pub}
}

// options are the join options of a test: this root, a reload command
// that appends to ROOT/reloads, and jit as the principals command.
func (r testRoot) options(jit string) hostjoin.Options {
	return hostjoin.Options{
		Layout: r.layout, Jit: jit,
		ReloadCommand: "echo reload >> '" + r.layout.Path("/reloads") + "'",
	}
}

// reloads counts the runs of the test's reload command.
func (r testRoot) reloads(t *testing.T) int {
	b, err := os.ReadFile(r.layout.Path("/reloads"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "reload\n")
}

// snapshot describes every entry under the root: type, mode, inode-free
// content (or link target), so two snapshots are equal exactly when the
// tree is byte for byte the same.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			desc += fmt.Sprintf(" uid=%d", st.Uid)
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(b)
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails t with the entries that differ.
func sameTree(t *testing.T, before, after map[string]string) {
	t.Helper()
	var diffs []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			diffs = append(diffs, "removed "+p)
		} else if a != b {
			diffs = append(diffs, "changed "+p)
		}
	}
	for p := range after {
		if _, ok := before[p]; !ok {
			diffs = append(diffs, "added "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		t.Errorf("the tree changed:\n%s", strings.Join(diffs, "\n"))
	}
}

// safeJit returns the path of a jit binary in a directory sshd accepts for
// AuthorizedPrincipalsCommand: owned by root and writable by no one else
// all the way up (sshd's safe_path refuses /tmp, which is 1777), and open
// to nobody. It is built for the test and removed after it.
func safeJit(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("this test runs sshd's AuthorizedPrincipalsCommand as nobody, which needs root")
		}
		t.Skip("needs root: sshd runs the principals command as nobody")
	}
	// sshd runs the principals command only from a root-owned path that
	// nobody else can write, wherever the tree was cloned.
	bin := sshdtest.CommandDir(t)
	jit := filepath.Join(bin, "jit")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, "go", "build", "-o", jit, "github.com/jitssh/jitssh/cmd/jit")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build jit: %v\n%s", err, out)
	}
	return jit
}
