package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestSFTPByteCounts: files moved with stock sftp and scp (OpenSSH 9 runs
// scp over sftp) through the bastion, with the Host block jit ssh-config
// prints, show in jit sessions show (text and JSON) and in the text export
// with their exact byte counts.
func TestSFTPByteCounts(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "sftp", "scp")
	w := newSecWorld(t)
	alice, auditor, login := w.alice, w.auditor, w.login
	mustRun(t, alice, "ssh", login+"@db1", "--reason", "copy the release tarball", "--", "true")
	cfg := filepath.Join(alice.Home, "ssh_config")
	if err := os.WriteFile(cfg, []byte(mustRun(t, alice, "ssh-config", "--login", login, "db1")), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir() // local and remote: the target is this machine
	up, down := filepath.Join(dir, "up.bin"), filepath.Join(dir, "down.bin")
	writeRandom(t, up, 3<<20)
	writeRandom(t, down, 1<<20+13)
	tests := []struct {
		name   string
		bin    string
		args   []string
		stdin  string
		marker string
	}{
		{name: "sftp put", bin: "sftp", args: []string{"-b", "-", "db1"}, stdin: "put " + up + " " + up + ".remote\n",
			marker: `sftp write "` + up + `.remote" 3145728 bytes`},
		{name: "scp download", bin: "scp", args: []string{"db1:" + down, down + ".local"},
			marker: `sftp read "` + down + `" 1048589 bytes`},
		// Stock sftp renames with the posix-rename@openssh.com extension.
		{name: "sftp rename", bin: "sftp", args: []string{"-b", "-", "db1"}, stdin: "rename " + up + ".remote " + up + ".moved\n",
			marker: `sftp rename "` + up + `.remote" to "` + up + `.moved"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(secSessions(t, auditor))
			runOpenSSH(t, alice, tc.stdin, sshdtest.Path(tc.bin), append([]string{"-F", cfg}, tc.args...)...)
			var s api.Session
			testkit.WaitFor(t, sessionWait, "the sftp session to end", func() bool {
				ss := secSessions(t, auditor)
				if len(ss) <= before || ss[0].EndedAt == nil {
					return false
				}
				s = ss[0]
				return true
			})
			if s.Command != "subsystem sftp" {
				t.Fatalf("newest session %+v, want the sftp subsystem", s)
			}
			if text := mustRun(t, auditor, "sessions", "show", s.ID); !strings.Contains(text, tc.marker) {
				t.Errorf("jit sessions show %s lacks %q:\n%s", s.ID, tc.marker, text)
			}
			var d api.SessionDetail
			if err := json.Unmarshal([]byte(mustRun(t, auditor, "sessions", "show", s.ID, "--format", "json")), &d); err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(d.Markers, func(m api.SessionMarker) bool { return m.Text == tc.marker }) {
				t.Errorf("jit sessions show --format json: markers %+v lack %q", d.Markers, tc.marker)
			}
			if text := mustRun(t, auditor, "sessions", "export", s.ID, "--format", "text"); !strings.Contains(text, "# marker: "+tc.marker+"\n") {
				t.Errorf("text export of %s lacks %q:\n%s", s.ID, tc.marker, text)
			}
		})
	}
}

// writeRandom writes n random bytes to path.
func writeRandom(t *testing.T, path string, n int) {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// runOpenSSH runs an OpenSSH client as e (its HOME) with stdin and fails
// the test unless it exits 0 within commandTimeout.
func runOpenSSH(t *testing.T, e *engineer, stdin, bin string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env, cmd.Dir, cmd.Stdin = e.env(), e.Home, strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out.String())
	}
}
