package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// adminPolicy defines alice without a key (she is enrolled with jitd user
// add) and an admin who manages users; dev may log in as deploy on db1.
// {{.Login}} is an extra login that a reload adds.
const adminPolicy = `
users:
  alice: {groups: [dev], keys: []}
  admin: {groups: [admins], keys: [{{index .Key "admin"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
admins: {groups: [admins], may_request_access: false}
auditors: {groups: [secops]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: prod-db
    groups: [dev]
    hosts: {names: [db1]}
    logins: [deploy{{.Login}}]
    justification: {min_length: 10}
`

// enrolWait bounds how long a running daemon takes to pick up a user
// enrolled by another process (it looks every 5 s).
const enrolWait = 15 * time.Second

// TestEnrolmentAndAdmin covers identity management through the binaries:
// jitd user add on the data directory of a running daemon, jit admin user
// add/list/remove, jit admin reload with a good and a bad policy file, the
// admin role required for all of it, and the audit trail of each.
func TestEnrolmentAndAdmin(t *testing.T) {
	t.Parallel()
	alice, erin, admin, auditor := newEngineer(t, "alice"), newEngineer(t, "erin"), newEngineer(t, "admin"), newEngineer(t, "auditor")
	people := []*engineer{alice, erin, admin, auditor}
	// The test polls login every 100 ms until the daemon picks up an
	// enrolment, far above the default per-address login rate.
	d := startDaemon(t, renderPolicy(t, adminPolicy, "", people, nil), "--login-rate", "1000/1m")
	d.login(t, admin)
	d.login(t, auditor)

	t.Run("jitd user add", func(t *testing.T) {
		loginArgs := []string{"login", "--ca", "https://" + d.API, "--fingerprint", d.Fingerprint, "--user", "alice", "-i", alice.Key}
		if _, stderr, code := run(t, alice, loginArgs...); code == 0 {
			t.Fatal("alice logged in before her key was enrolled")
		} else if !strings.Contains(stderr, "alice") {
			t.Errorf("refused login does not name the user: %q", stderr)
		}
		enrolOut := jitd(t, "user", "add", "--data", d.Data, "alice", "--key", pubFile(t, alice))
		if !strings.Contains(enrolOut, "enrolled alice") {
			t.Errorf("jitd user add printed %q", enrolOut)
		}
		testkit.WaitFor(t, enrolWait, "the daemon to accept alice's enrolled key", func() bool {
			_, _, code := run(t, alice, loginArgs...)
			return code == 0
		})
		mustRun(t, alice, "request", "db1", "--login", "deploy", "--reason", "deploy release 42")
	})

	t.Run("jit admin user", func(t *testing.T) {
		if _, stderr, code := run(t, auditor, "admin", "user", "add", "erin", "--key", pubFile(t, erin), "--group", "dev"); code != 3 || !strings.Contains(stderr, "not_admin") {
			t.Errorf("a non-admin enrolling: exit %d, stderr %q; want 3 and not_admin", code, stderr)
		}
		if out := mustRun(t, admin, "admin", "user", "add", "erin", "--key", pubFile(t, erin), "--group", "dev"); !strings.Contains(out, "enrolled erin") {
			t.Errorf("jit admin user add printed %q", out)
		}
		d.login(t, erin)
		mustRun(t, erin, "request", "db1", "--login", "deploy", "--reason", "erin's first deploy")

		users := map[string][]string{}
		dec := json.NewDecoder(strings.NewReader(mustRun(t, admin, "admin", "user", "list", "--format", "json")))
		for dec.More() {
			var u struct {
				Name   string   `json:"name"`
				Groups []string `json:"groups"`
			}
			if err := dec.Decode(&u); err != nil {
				t.Fatalf("parse jit admin user list: %v", err)
			}
			users[u.Name] = u.Groups
		}
		for name, group := range map[string]string{"alice": "dev", "erin": "dev", "admin": "admins"} {
			if gs, ok := users[name]; !ok || !strings.Contains(strings.Join(gs, ","), group) {
				t.Errorf("jit admin user list: %s has groups %q (listed %v), want %s", name, gs, ok, group)
			}
		}

		if out := mustRun(t, admin, "admin", "user", "remove", "erin"); !strings.Contains(out, "removed erin") {
			t.Errorf("jit admin user remove printed %q", out)
		}
		if _, stderr, code := run(t, erin, "request", "db1", "--login", "deploy", "--reason", "after removal attempt"); code == 0 {
			t.Error("a removed user still got a certificate")
		} else if !strings.Contains(stderr, "erin") && !strings.Contains(stderr, "unauthenticated") {
			t.Errorf("refusal of a removed user says %q", stderr)
		}
	})

	t.Run("jit admin reload", func(t *testing.T) {
		policyFile := filepath.Join(d.Data, "policy.yaml")
		if _, stderr, code := run(t, alice, "request", "db1", "--login", "backup", "--reason", "take a manual backup"); code != 3 {
			t.Fatalf("backup login before reload: exit %d (%s), want 3", code, stderr)
		}
		if _, _, code := run(t, alice, "admin", "reload"); code != 3 {
			t.Errorf("alice reloading policy: exit %d, want 3", code)
		}
		if err := os.WriteFile(policyFile, []byte(renderPolicy(t, adminPolicy, ", backup", people, nil)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out := mustRun(t, admin, "admin", "reload"); !strings.Contains(out, "policy reloaded") {
			t.Errorf("jit admin reload printed %q", out)
		}
		mustRun(t, alice, "request", "db1", "--login", "backup", "--reason", "take a manual backup")

		// A broken file is refused with its line, and the last good policy
		// stays in force.
		if err := os.WriteFile(policyFile, []byte(testkit.BadPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := run(t, admin, "admin", "reload")
		if code == 0 || !strings.Contains(stderr, "policy.yaml:2") || !strings.Contains(stderr, "colour") {
			t.Errorf("reloading a bad policy: exit %d, stderr %q; want an error naming policy.yaml:2 and the field", code, stderr)
		}
		mustRun(t, alice, "request", "db1", "--login", "backup", "--reason", "backup again, old policy")

		// SIGHUP reloads too: the backup login goes away again.
		if err := os.WriteFile(policyFile, []byte(renderPolicy(t, adminPolicy, "", people, nil)), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testkit.WaitFor(t, 10*time.Second, "SIGHUP to withdraw the backup login", func() bool {
			_, _, code := run(t, alice, "request", "db1", "--login", "backup", "--reason", "after the SIGHUP reload")
			return code == 3
		})
	})

	evs := auditList(t, auditor)
	for _, want := range []struct{ event, user, code, actor string }{
		{event: "admin.user.add", user: "alice"},
		{event: "admin.user.add", user: "erin"},
		{event: "admin.user.remove", user: "erin"},
		{event: "policy.reload", code: "ok"},
		{event: "policy.reload", code: "failed"},
		{event: "policy.reload", code: "ok", actor: "SIGHUP"},
		{event: "cert.issued", user: "erin"},
	} {
		if _, ok := findEvent(evs, want.event, func(ev auditEvent) bool {
			return (want.user == "" || ev.User == want.user) && (want.code == "" || code(ev) == want.code) && (want.actor == "" || ev.Actor == want.actor)
		}); !ok {
			t.Errorf("no %s event (user %q, code %q, actor %q) in the audit trail", want.event, want.user, want.code, want.actor)
		}
	}
	if t.Failed() {
		for _, ev := range evs {
			t.Logf("audit: %s %s actor=%s user=%s %q", ev.Event, code(ev), ev.Actor, ev.User, ev.Message)
		}
	}
	if out := mustRun(t, auditor, "audit", "verify"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("jit audit verify: %q, want ok", out)
	}
}

// pubFile writes e's public key to a file and returns its path.
func pubFile(t testing.TB, e *engineer) string {
	t.Helper()
	path := e.Key + ".pub"
	if err := os.WriteFile(path, []byte(e.AuthorizedKey+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// jitd runs the jitd binary with args, failing the test unless it exits 0.
func jitd(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin(t, "jitd"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("jitd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
