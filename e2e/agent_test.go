package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestSSHAgent uses a real OpenSSH ssh-agent: jit login signs the server's
// nonce with the enrolled key held by the agent (no key file), and jit
// request loads the fresh key and certificate into the agent, where ssh
// finds them.
func TestSSHAgent(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "ssh-agent", "ssh-add", "sshd", "ssh")
	login := sshdtest.LocalUser(t)
	alice := newEngineer(t, "alice")
	d := initDaemon(t)
	db1 := d.targetSSHD(t, "db1")
	d.serve(t, renderPolicy(t, issue2Policy, login, []*engineer{alice, newEngineer(t, "auditor")}, map[string]*sshdtest.Server{"db1": db1, "db2": db1}))

	// Without an agent, asking for one is a usage error.
	d.login(t, alice)
	if _, stderr, code := run(t, alice, "request", "db1", "--login", login, "--reason", "CHG-20 needs the agent", "--add-to-agent", "yes"); code != 2 || !strings.Contains(stderr, "SSH_AUTH_SOCK") {
		t.Errorf("--add-to-agent yes without an agent: exit %d, stderr %q; want 2 naming SSH_AUTH_SOCK", code, stderr)
	}

	sock := startAgent(t)
	alice.ExtraEnv = []string{"SSH_AUTH_SOCK=" + sock}
	sshAdd(t, sock, alice.Key)
	if err := os.Remove(alice.Key); err != nil { // the agent is now the only holder
		t.Fatal(err)
	}
	mustRun(t, alice, "login", "--ca", "https://"+d.API, "--fingerprint", d.Fingerprint, "--user", "alice")

	tests := []struct {
		name       string
		mode       string
		wantLoaded bool
	}{
		{name: "auto loads when an agent runs", mode: "auto", wantLoaded: true},
		{name: "no keeps the agent out", mode: "no", wantLoaded: false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := sshAdd(t, sock, "-L")
			g := parseGrant(t, mustRun(t, alice, "request", "db1", "--login", login, "--reason", "CHG-21 agent "+tc.mode, "--add-to-agent", tc.mode, "--format", "json"))
			certLine, err := os.ReadFile(g.CertificateFile)
			if err != nil {
				t.Fatal(err)
			}
			fields := strings.Fields(string(certLine))
			listed := sshAdd(t, sock, "-L")
			loaded := strings.Contains(listed, fields[1])
			if loaded != tc.wantLoaded {
				t.Errorf("certificate in the agent: %v, want %v\nagent before:\n%s\nafter:\n%s", loaded, tc.wantLoaded, before, listed)
			}
			if !tc.wantLoaded {
				return
			}
			// ssh authenticates with the agent's certificate alone.
			ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, sshdtest.Path("ssh"), "-F", "none", "-o", "BatchMode=yes",
				"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+db1.KnownHosts, "-o", "GlobalKnownHostsFile=/dev/null",
				"-o", "IdentityFile=none", "-o", "PreferredAuthentications=publickey",
				"-p", strconv.Itoa(db1.Port), login+"@127.0.0.1", "true")
			cmd.Env = []string{"SSH_AUTH_SOCK=" + sock, "HOME=" + alice.Home, "PATH=" + os.Getenv("PATH")}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("ssh with only the agent: %v\n%s\nsshd log:\n%s", err, out, db1.Log())
			}
		})
	}
}

// startAgent starts ssh-agent in the foreground on a socket in a temporary
// directory and stops it in t.Cleanup.
func startAgent(t *testing.T) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	cmd := exec.Command(sshdtest.Path("ssh-agent"), "-D", "-a", sock)
	cmd.Stdout, cmd.Stderr = &testkit.Buffer{}, &testkit.Buffer{}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ssh-agent: %v", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	testkit.WaitFor(t, 10*time.Second, "ssh-agent to listen", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	return sock
}

// sshAdd runs ssh-add against the agent at sock and returns its output.
func sshAdd(t *testing.T, sock string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshdtest.Path("ssh-add"), args...)
	cmd.Env = []string{"SSH_AUTH_SOCK=" + sock}
	out, err := cmd.CombinedOutput()
	if err != nil && !(len(args) == 1 && args[0] == "-L" && strings.Contains(string(out), "no identities")) {
		t.Fatalf("ssh-add %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
