package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/sshdtest"
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
	sshdtest.Require(t, "sshd", "ssh")
	w := &secWorld{login: sshdtest.LocalUser(t), d: initDaemon(t)}
	w.alice, w.bob, w.carol, w.auditor, w.admin = newEngineer(t, "alice"), newEngineer(t, "bob"), newEngineer(t, "carol"), newEngineer(t, "auditor"), newEngineer(t, "admin")
	w.db1, w.db2 = secBastionTarget(t, w.d, "db1"), secBastionTarget(t, w.d, "db2")
	w.serve(t)
	for _, e := range w.everyone() {
		w.d.login(t, e)
	}
	return w
}

func (w *secWorld) everyone() []*engineer {
	return []*engineer{w.alice, w.bob, w.carol, w.auditor, w.admin}
}

// serve (re)starts the daemon of w with its bastion; the daemon stops at the
// end of t.
func (w *secWorld) serve(t testing.TB) {
	t.Helper()
	w.d.serve(t, renderPolicy(t, secPolicy, w.login, w.everyone(), map[string]*sshdtest.Server{"db1": w.db1, "db2": w.db2}), "--bastion", "127.0.0.1:0")
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
	waitFor(t, timeout, "a finished session running "+marker, func() bool {
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
