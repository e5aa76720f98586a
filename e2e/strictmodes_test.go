package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestServeRefusesLooseModes breaks one mode of a fresh data directory at a
// time: jitd serve, jitd user add and jitd host certify refuse to run,
// naming the path and the command that fixes it; with that command run,
// the next case is tried, and at the end jitd serve starts; a policy
// loosened while it serves is not reloaded on SIGHUP.
func TestServeRefusesLooseModes(t *testing.T) {
	t.Parallel()
	alice := newEngineer(t, "alice")
	d := initDaemon(t)
	policy := renderPolicy(t, cliPolicy, "deploy", []*engineer{alice}, nil)
	if err := os.WriteFile(filepath.Join(d.Data, "policy.yaml"), []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(t.TempDir(), "alice.pub")
	if err := os.WriteFile(keyFile, []byte(alice.AuthorizedKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hostKey := filepath.Join(t.TempDir(), "ssh_host_ed25519_key.pub")
	if err := os.WriteFile(hostKey, []byte(alice.AuthorizedKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	commands := map[string][]string{
		"serve":        {"serve", "--data", d.Data, "--api", "127.0.0.1:0"},
		"user add":     {"user", "add", "--data", d.Data, "--key", keyFile, "mallory"},
		"host certify": {"host", "certify", "--data", d.Data, "--principal", "db1", hostKey},
	}
	tests := []struct {
		name string
		path string // loosened with mode
		mode os.FileMode
	}{
		{name: "data directory 0777", path: d.Data, mode: 0o777},
		{name: "policy 0666", path: filepath.Join(d.Data, "policy.yaml"), mode: 0o666},
		{name: "database 0666", path: filepath.Join(d.Data, "jitssh.db"), mode: 0o666},
		{name: "recordings 0770", path: filepath.Join(d.Data, "recordings"), mode: 0o770},
		{name: "ca 0777", path: filepath.Join(d.Data, "ca"), mode: 0o777},
		{name: "tls 0757", path: filepath.Join(d.Data, "tls"), mode: 0o757},
		{name: "parent 0777", path: filepath.Dir(d.Data), mode: 0o777},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Chmod(tc.path, tc.mode); err != nil {
				t.Fatal(err)
			}
			fix := "chmod go-w " + tc.path
			for name, args := range commands {
				// A jitd serve that does not refuse serves until the
				// timeout, which fails the test.
				out, err := runJitd(t, daemonStartTimeout, args...)
				if err == nil || !strings.Contains(out, tc.path+" is writable by") || !strings.Contains(out, "run "+fix) {
					t.Errorf("jitd %s with %s at %04o: %v, want refused naming the path and %q:\n%s", name, tc.path, tc.mode, err, fix, out)
				}
			}
			if out, err := exec.Command("chmod", "go-w", tc.path).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", fix, err, out)
			}
		})
	}
	d.serve(t, policy)
	if out, err := runJitd(t, commandTimeout, commands["user add"]...); err != nil {
		t.Errorf("jitd user add after the fixes: %v\n%s", err, out)
	}

	// A policy made writable by others while jitd serves is not reloaded.
	policyFile := filepath.Join(d.Data, "policy.yaml")
	if err := os.Chmod(policyFile, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, daemonStartTimeout, "the reload refused", func() bool {
		return strings.Contains(d.log.String(), "policy reload failed") && strings.Contains(d.log.String(), "run chmod go-w "+policyFile)
	})
	if err := os.Chmod(policyFile, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runJitd runs jitd with args to completion, at most timeout, and returns
// its combined output.
func runJitd(t testing.TB, timeout time.Duration, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin(t, "jitd"), args...).CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("jitd %v did not finish within %v:\n%s", args, timeout, out)
	}
	return string(out), err
}
