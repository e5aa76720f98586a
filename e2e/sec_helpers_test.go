package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// secPolicy is the policy of the session and security-tool tests: alice and
// bob reach db1 with a reason alone and db2 only with carol's approval;
// auditor reads sessions and the trail; admin revokes.
const secPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  bob: {groups: [dev], keys: [{{index .Key "bob"}}]}
  carol: {groups: [approvers], keys: [{{index .Key "carol"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
  admin: {groups: [admins], keys: [{{index .Key "admin"}}]}
admins: {groups: [admins]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "{{index .Addr "db1"}}", labels: {env: prod}}
  db2: {address: "{{index .Addr "db2"}}", labels: {env: prod}}
roles:
  - name: prod-db
    groups: [dev]
    hosts: {names: [db1]}
    logins: [{{.Login}}]
    ttl: 10m
    max_ttl: 30m
    justification: {min_length: 10}
  - name: prod-db-approved
    groups: [dev]
    hosts: {names: [db2]}
    logins: [{{.Login}}]
    ttl: 10m
    justification: {min_length: 10}
    approval: {approvers: [approvers], count: 1}
`

// secWorld is a daemon with a bastion, two targets behind it and the
// people of secPolicy, all logged in.
type secWorld struct {
	d                                 *daemon
	login                             string
	db1, db2                          *sshdtest.Server
	alice, bob, carol, auditor, admin *engineer
}

// newSecWorld starts the targets and a daemon serving secPolicy with a
// bastion on 127.0.0.1:0, and logs everyone in.
func newSecWorld(t *testing.T) *secWorld {
	t.Helper()
	w := newSecWorldStopped(t)
	w.serve(t)
	w.loginAll(t)
	return w
}

// newSecWorldStopped is newSecWorld without starting the daemon, for tests
// that run it only within a subtest (it stops, and signs its checkpoint,
// when the subtest ends).
func newSecWorldStopped(t *testing.T) *secWorld {
	t.Helper()
	sshdtest.Require(t, "sshd", "ssh")
	w := &secWorld{login: sshdtest.LocalUser(t), d: initDaemon(t)}
	w.alice, w.bob, w.carol, w.auditor, w.admin = newEngineer(t, "alice"), newEngineer(t, "bob"), newEngineer(t, "carol"), newEngineer(t, "auditor"), newEngineer(t, "admin")
	w.db1, w.db2 = secBastionTarget(t, w.d, "db1"), secBastionTarget(t, w.d, "db2")
	return w
}

func (w *secWorld) loginAll(t testing.TB) {
	t.Helper()
	for _, e := range w.everyone() {
		w.d.login(t, e)
	}
}

func (w *secWorld) everyone() []*engineer {
	return []*engineer{w.alice, w.bob, w.carol, w.auditor, w.admin}
}

// serve (re)starts the daemon of w with its bastion and extra flags; the
// daemon stops at the end of t.
func (w *secWorld) serve(t testing.TB, extra ...string) {
	t.Helper()
	policy := renderPolicy(t, secPolicy, w.login, w.everyone(), map[string]*sshdtest.Server{"db1": w.db1, "db2": w.db2})
	w.d.serve(t, policy, append([]string{"--bastion", "127.0.0.1:0"}, extra...)...)
}

// secBastionTarget starts a real sshd for host as a target behind d's
// bastion: its host key is certified by d's host CA (the bastion trusts no
// key on first use), it trusts only d's target CA, and it accepts the
// principal LOGIN@host.
func secBastionTarget(t testing.TB, d *daemon, host string) *sshdtest.Server {
	t.Helper()
	keys, err := ca.LoadKeys(filepath.Join(d.Data, "ca"))
	if err != nil {
		t.Fatalf("load CA keys of %s: %v", d.Data, err)
	}
	return sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: []ssh.PublicKey{keys.Target.PublicKey()},
		Principals:        []string{sshdtest.LocalUser(t) + "@" + host},
		HostCA:            keys.Host,
		HostName:          host,
	})
}

// secSessions runs `jit sessions list --format json` as e with args and
// parses every line.
func secSessions(t testing.TB, e *engineer, args ...string) []api.Session {
	t.Helper()
	out := mustRun(t, e, append([]string{"sessions", "list", "--format", "json"}, args...)...)
	var ss []api.Session
	for i, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		var s api.Session
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			t.Fatalf("sessions list line %d is not one session object: %v\n%s", i+1, err, line)
		}
		ss = append(ss, s)
	}
	return ss
}

// secSessionWith waits at most timeout for the one session whose command
// contains marker to have ended, and returns it.
func secSessionWith(t testing.TB, e *engineer, marker string, timeout time.Duration) api.Session {
	t.Helper()
	var found api.Session
	testkit.WaitFor(t, timeout, "a finished session running "+marker, func() bool {
		for _, s := range secSessions(t, e) {
			if strings.Contains(s.Command, marker) && s.EndedAt != nil {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// secVerify runs `jit audit verify --format json` as e and returns its
// answer and exit code.
func secVerify(t testing.TB, e *engineer) (api.VerifyResponse, result) {
	t.Helper()
	r := start(t, e, "audit", "verify", "--format", "json").wait(t, commandTimeout)
	var v api.VerifyResponse
	if err := json.Unmarshal([]byte(r.Stdout), &v); err != nil {
		t.Fatalf("jit audit verify --format json: %v\n%v", err, r)
	}
	return v, r
}

// secRequire skips when an outside tool is missing, except with CI=true,
// where it fails the test.
func secRequire(t testing.TB, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	msg := name + " not found in $PATH; install it with: apt-get install " + pkg
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// secRunStdin runs jit as e with stdin fed from the string in, like an
// engineer typing into jit ssh -t.
func secRunStdin(t testing.TB, e *engineer, in string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "jit"), args...)
	cmd.Env, cmd.Dir = e.env(), e.Home
	var stdout, stderr testkit.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(in), &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("jit %s did not exit within %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), commandTimeout, &stdout, &stderr)
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("run jit %s: %v", strings.Join(args, " "), err)
	}
	return result{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// ptyRun is jit running on a pseudo-terminal: its stdin, stdout and stderr
// are the terminal, as when a person runs jit replay.
type ptyRun struct {
	args   []string
	cmd    *exec.Cmd
	tty    *os.File // the terminal's controlling side
	screen *testkit.Buffer
	done   chan struct{} // closed when jit exited and its output is drained
}

// secStartPTY starts jit as e on a new 120x40 terminal; the process is
// killed in t.Cleanup if the test did not wait for it.
func secStartPTY(t testing.TB, e *engineer, args ...string) *ptyRun {
	t.Helper()
	p := &ptyRun{args: args, screen: &testkit.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin(t, "jit"), args...)
	p.cmd.Env, p.cmd.Dir = append(e.env(), "TERM=xterm-256color"), e.Home
	tty, err := pty.StartWithSize(p.cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatalf("start jit %s on a pty: %v", strings.Join(args, " "), err)
	}
	p.tty = tty
	drained := make(chan struct{})
	go func() {
		_, _ = io.Copy(p.screen, tty) // ends with EIO once jit has exited
		close(drained)
	}()
	go func() {
		_ = p.cmd.Wait()
		<-drained
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		tty.Close()
	})
	return p
}

// wait waits at most timeout for jit to exit and returns what it wrote to
// the terminal and its exit code.
func (p *ptyRun) wait(t testing.TB, timeout time.Duration) (string, int) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Fatalf("jit %s on a pty did not exit within %v; screen:\n%q", strings.Join(p.args, " "), timeout, p.screen)
	}
	return p.screen.String(), p.cmd.ProcessState.ExitCode()
}

// secAsciinema runs asciinema with a pseudo-terminal as its controlling
// terminal (asciinema cat and play open /dev/tty) and its stdout captured
// apart, byte for byte.
func secAsciinema(t testing.TB, path string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout testkit.Buffer
	cmd.Stdout = &stdout
	tty, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 40, Cols: 120})
	if err != nil {
		t.Fatalf("start asciinema %v on a pty: %v", args, err)
	}
	defer tty.Close()
	var screen testkit.Buffer
	go func() { _, _ = io.Copy(&screen, tty) }()
	if err := cmd.Wait(); err != nil {
		return stdout.String(), fmt.Errorf("asciinema %v: %w; terminal: %q", args, err, screen.String())
	}
	return stdout.String(), nil
}
