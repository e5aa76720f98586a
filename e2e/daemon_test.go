package e2e

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestDaemonFailsClosed checks that jitd serve refuses to start, with a
// message naming the problem, on a bad policy file, CA or TLS keys that
// others can read, or a data directory that was never initialised; and
// that jitd init never overwrites keys.
func TestDaemonFailsClosed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		spoil   func(t *testing.T, data string)
		wantErr []string
	}{
		{
			name: "unknown field in policy",
			spoil: func(t *testing.T, data string) {
				writeFile(t, filepath.Join(data, "policy.yaml"), "users:\n  alice: {groups: [dev]}\nhosts: {}\nroles: []\nfavourite_colour: blue\n", 0o600)
			},
			wantErr: []string{"policy.yaml:5", "favourite_colour"},
		},
		{
			name: "role with a wildcard login",
			spoil: func(t *testing.T, data string) {
				writeFile(t, filepath.Join(data, "policy.yaml"), "users:\n  alice: {groups: [dev]}\nhosts:\n  db1: {address: \"127.0.0.1:22\"}\nroles:\n  - name: any\n    groups: [dev]\n    hosts: {names: [db1]}\n    logins: [\"*\"]\n", 0o600)
			},
			wantErr: []string{"policy.yaml:9", "login"},
		},
		{
			name:    "user CA readable by others",
			spoil:   func(t *testing.T, data string) { chmod(t, filepath.Join(data, "ca", "user_ca"), 0o644) },
			wantErr: []string{"user_ca", "0644"},
		},
		{
			name:    "TLS key readable by the group",
			spoil:   func(t *testing.T, data string) { chmod(t, filepath.Join(data, "tls", "tls.key"), 0o640) },
			wantErr: []string{"tls.key", "0640"},
		},
		{
			name:    "no user CA",
			spoil:   func(t *testing.T, data string) { remove(t, filepath.Join(data, "ca", "user_ca")) },
			wantErr: []string{"jitd init", "user_ca"},
		},
		{
			// serve never makes a checkpoint key: a new one would vouch
			// for whatever chain it found.
			name:    "no checkpoint key",
			spoil:   func(t *testing.T, data string) { remove(t, filepath.Join(data, "ca", "checkpoint_key")) },
			wantErr: []string{"checkpoint_key is missing", "run jitd init, or jitd serve --init"},
		},
		{
			name:    "never initialised",
			spoil:   func(t *testing.T, data string) { remove(t, data) },
			wantErr: []string{"jitd init"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := initDaemon(t)
			tc.spoil(t, d.Data)
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			var out bytes.Buffer
			cmd := exec.CommandContext(ctx, bin(t, "jitd"), "serve", "--data", d.Data, "--api", "127.0.0.1:0")
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
				t.Fatalf("jitd serve: %v, want exit 1\n%s", err, out.String())
			}
			if strings.Contains(out.String(), "jitd serving") {
				t.Errorf("jitd served before failing:\n%s", out.String())
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(out.String(), want) {
					t.Errorf("jitd serve output lacks %q:\n%s", want, out.String())
				}
			}
		})
	}

	t.Run("init never overwrites", func(t *testing.T) {
		t.Parallel()
		d := initDaemon(t)
		files := []string{"ca/user_ca", "ca/host_ca", "ca/target_ca", "ca/checkpoint_key", "tls/tls.key", "policy.yaml"}
		before := map[string][]byte{}
		for _, f := range files {
			before[f] = readFile(t, filepath.Join(d.Data, f))
		}
		writeFile(t, filepath.Join(d.Data, "policy.yaml"), "# edited by the operator\n", 0o600)
		before["policy.yaml"] = readFile(t, filepath.Join(d.Data, "policy.yaml"))
		out := jitd(t, "init", "--data", d.Data)
		for _, f := range files {
			if !bytes.Equal(before[f], readFile(t, filepath.Join(d.Data, f))) {
				t.Errorf("a second jitd init changed %s", f)
			}
		}
		if strings.Contains(out, "created") {
			t.Errorf("a second jitd init says it created something:\n%s", out)
		}
	})
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func remove(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

// TestSIGHUPReloadReportsChange: jitd serve reloads its policy on SIGHUP and
// logs what changed; a bad file is logged as refused, naming its line, and
// the daemon keeps serving (its cleanup stops it with SIGTERM and wants
// exit 0).
func TestSIGHUPReloadReportsChange(t *testing.T) {
	t.Parallel()
	const policy = "users:\n  alice: {groups: [dev]}\nhosts:\n  db1: {address: \"127.0.0.1:22\"}\nroles: []\n"
	d := startDaemon(t, policy)
	policyFile := filepath.Join(d.Data, "policy.yaml")
	writeFile(t, policyFile, testkit.Edit(t, policy, "hosts:\n", "hosts:\n  db2: {address: \"127.0.0.1:22\"}\n"), 0o600)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the reload's log line", func() bool {
		return strings.Contains(d.log.String(), `msg="policy reloaded" change.summary="hosts +db2" change.hosts_added=1`)
	})
	writeFile(t, policyFile, testkit.BadPolicy, 0o600)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "the failed reload's log line", func() bool {
		return strings.Contains(d.log.String(), `msg="policy reload failed; keeping the last good policy"`) &&
			strings.Contains(d.log.String(), "policy.yaml:2")
	})
}
