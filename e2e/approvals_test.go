package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// approvalsPolicy: elevated access on db1 needs one approver, db2 two,
// db3's requests wait only 2 s, db4 needs one approver (denials and
// timeouts). alice is in the approvers group too: she still may not
// approve her own requests.
const approvalsPolicy = `
users:
  alice: {groups: [dev, approvers], keys: [{{index .Key "alice"}}]}
  bob: {groups: [approvers], keys: [{{index .Key "bob"}}]}
  dave: {groups: [approvers], keys: [{{index .Key "dave"}}]}
  carol: {groups: [dev], keys: [{{index .Key "carol"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "{{index .Addr "db1"}}", labels: {env: prod}}
  db2: {address: "127.0.0.1:22", labels: {env: prod}}
  db3: {address: "127.0.0.1:22", labels: {env: prod}}
  db4: {address: "127.0.0.1:22", labels: {env: prod}}
  db5: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: prod-root
    groups: [dev]
    hosts: {names: [db1, db4]}
    logins: [{{.Login}}]
    justification: {min_length: 10, ticket: '^(INC|CHG)-[0-9]+'}
    approval: {approvers: [approvers], count: 1}
  - name: two-person
    groups: [dev]
    hosts: {names: [db2]}
    logins: [{{.Login}}]
    justification: {min_length: 10}
    approval: {approvers: [approvers], count: 2}
  - name: emergency
    groups: [dev]
    hosts: {names: [db5]}
    logins: [{{.Login}}]
    justification: {min_length: 10, ticket: '^INC-[0-9]+'}
    approval: {approvers: [approvers], count: 1}
    break_glass: true
  - name: short-wait
    groups: [dev]
    hosts: {names: [db3]}
    logins: [{{.Login}}]
    justification: {min_length: 10}
    approval: {approvers: [approvers], count: 1}
    request_ttl: 2s
`

// approvalWait bounds how long a waiting jit takes to notice a decision: it
// polls every second.
const approvalWait = 15 * time.Second

// TestIssue4Approvals is the acceptance test of issue 4, through the
// binaries: approval by another person, no self-approval, approvers only,
// no approving expired requests, denial gives no certificate, N-of-M with
// distinct approvers, --no-wait with jit wait, --timeout, and every outcome
// in a verifiable audit trail.
func TestIssue4Approvals(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "sshd", "ssh")
	login := sshdtest.LocalUser(t)
	alice, bob, dave, carol, auditor := newEngineer(t, "alice"), newEngineer(t, "bob"), newEngineer(t, "dave"), newEngineer(t, "carol"), newEngineer(t, "auditor")
	everyone := []*engineer{alice, bob, dave, carol, auditor}
	d := initDaemon(t)
	db1 := d.targetSSHD(t, "db1")
	d.serve(t, renderPolicy(t, approvalsPolicy, login, everyone, map[string]*sshdtest.Server{"db1": db1}))
	for _, e := range everyone {
		d.login(t, e)
	}
	keyFile := func(host string) string { return filepath.Join(alice.Home, "state", "keys", login+"@"+host) }
	// ids collects each scenario's request for the audit check at the end.
	ids := map[string]string{}

	t.Run("approved while waiting", func(t *testing.T) {
		waiting := start(t, alice, "request", "db1", "--login", login, "--reason", "CHG-7 rotate the root password", "--format", "json")
		var id string
		testkit.WaitFor(t, 10*time.Second, "bob to see alice's request with jit requests --pending", func() bool {
			for _, r := range pendingRequests(t, bob) {
				if r.User == "alice" && r.Host == "db1" && r.State == "pending" {
					id = r.ID
					return true
				}
			}
			return waiting.exited()
		})
		if waiting.exited() {
			t.Fatalf("jit request exited before approval: %v", waiting.wait(t, time.Second))
		}
		ids["approved"] = id
		for _, r := range pendingRequests(t, carol) {
			if r.ID == id {
				t.Errorf("carol, who approves nothing, sees %s in jit requests --pending", id)
			}
		}

		_, stderr, code := run(t, alice, "approve", id)
		if code != 3 || !strings.Contains(stderr, "self_approval") {
			t.Errorf("alice approving her own request: exit %d, stderr %q; want 3 and self_approval", code, stderr)
		}
		_, stderr, code = run(t, carol, "approve", id)
		if code != 3 || !strings.Contains(stderr, "not_approver") {
			t.Errorf("carol approving: exit %d, stderr %q; want 3 and not_approver", code, stderr)
		}
		if waiting.exited() {
			t.Fatalf("refused approvals ended the wait: %v", waiting.wait(t, time.Second))
		}
		if out := mustRun(t, bob, "approve", id, "--reason", "change approved in CAB"); !strings.Contains(out, "approved") {
			t.Errorf("jit approve printed %q, want the approved state", out)
		}

		res := waiting.wait(t, approvalWait)
		if res.Code != 0 {
			t.Fatalf("alice's waiting jit request after approval: %v", res)
		}
		if !strings.Contains(res.Stderr, "Waiting for request approval") || !strings.Contains(res.Stderr, "approved by bob") {
			t.Errorf("waiting jit request stderr %q lacks the wait and approval lines", res.Stderr)
		}
		g := parseGrant(t, res.Stdout)
		if g.Request.ID != id || g.KeyFile != keyFile("db1") {
			t.Errorf("grant for request %s key %s, want %s and %s", g.Request.ID, g.KeyFile, id, keyFile("db1"))
		}
		if out, err := sshTrue(t, db1, g.KeyFile); err != nil {
			t.Errorf("sshd for db1 refused the approved certificate: %v\n%s\nsshd log:\n%s", err, out, db1.Log())
		}
		// The approved request is redeemed once: it is no longer approvable.
		if _, stderr, code := run(t, dave, "approve", id); code == 0 || !strings.Contains(stderr, "not_pending") {
			t.Errorf("approving an issued request: exit %d, stderr %q; want a not_pending refusal", code, stderr)
		}
	})

	t.Run("expired request cannot be approved", func(t *testing.T) {
		out := mustRun(t, alice, "request", "db3", "--login", login, "--reason", "CHG-8 quick look", "--no-wait")
		id := strings.TrimSpace(out)
		if id != requestIDIn(t, out) {
			t.Fatalf("--no-wait printed %q, want only the request id", out)
		}
		ids["expired"] = id
		time.Sleep(2500 * time.Millisecond) // request_ttl is 2s
		// Whether the daemon's housekeeping expired it first or the approval
		// finds it overdue, the answer is request_expired.
		_, stderr, code := run(t, bob, "approve", id)
		if code == 0 || !strings.Contains(stderr, "request_expired") {
			t.Errorf("approving an expired request: exit %d, stderr %q; want a request_expired refusal", code, stderr)
		}
		if _, stderr, code := run(t, alice, "wait", id); code != 5 || !strings.Contains(stderr, "expired") {
			t.Errorf("jit wait on an expired request: exit %d, stderr %q; want 5", code, stderr)
		}
		if exists(keyFile("db3") + "-cert.pub") {
			t.Error("an expired request left a certificate")
		}
	})

	t.Run("denied request gives no certificate", func(t *testing.T) {
		id := strings.TrimSpace(mustRun(t, alice, "request", "db4", "--login", login, "--reason", "CHG-9 poke the kernel", "--no-wait"))
		ids["denied"] = id
		waiting := start(t, alice, "wait", id)
		mustRun(t, bob, "deny", id, "--reason", "change freeze until Monday")
		res := waiting.wait(t, approvalWait)
		if res.Code != 3 || !strings.Contains(res.Stderr, "denied by bob") || !strings.Contains(res.Stderr, "change freeze") {
			t.Errorf("jit wait on a denied request: %v; want exit 3 naming bob and his reason", res)
		}
		if exists(keyFile("db4")+"-cert.pub") || exists(keyFile("db4")) {
			t.Error("a denied request left a key or certificate")
		}
		if _, stderr, code := run(t, dave, "approve", id); code == 0 || !strings.Contains(stderr, "not_pending") {
			t.Errorf("approving a denied request: exit %d, stderr %q; want a not_pending refusal", code, stderr)
		}
	})

	t.Run("timeout leaves the request pending", func(t *testing.T) {
		began := time.Now()
		_, stderr, code := run(t, alice, "request", "db4", "--login", login, "--reason", "CHG-10 another try", "--timeout", "1s")
		if code != 4 || !strings.Contains(stderr, "jit wait") {
			t.Errorf("jit request --timeout 1s: exit %d, stderr %q; want 4 and how to resume", code, stderr)
		}
		if took := time.Since(began); took > 10*time.Second {
			t.Errorf("--timeout 1s took %v", took)
		}
		id := requestIDIn(t, stderr)
		ids["cancelled"] = id
		if out := mustRun(t, alice, "cancel", id); !strings.Contains(out, "cancelled") {
			t.Errorf("jit cancel printed %q", out)
		}
		if _, stderr, code := run(t, alice, "wait", id); code != 5 || !strings.Contains(stderr, "cancelled") {
			t.Errorf("jit wait on a cancelled request: exit %d, stderr %q; want 5", code, stderr)
		}
	})

	t.Run("interrupt leaves the request pending", func(t *testing.T) {
		waiting := start(t, alice, "request", "db4", "--login", login, "--reason", "CHG-12 interrupted wait")
		testkit.WaitFor(t, 10*time.Second, "jit request to say it is waiting", func() bool {
			return strings.Contains(waiting.stderr.String(), "Waiting for request approval") || waiting.exited()
		})
		if err := waiting.cmd.Process.Signal(os.Interrupt); err != nil {
			t.Fatal(err)
		}
		res := waiting.wait(t, 10*time.Second)
		id := requestIDIn(t, res.Stderr)
		if res.Code != 130 || !strings.Contains(res.Stderr, "jit wait "+id) {
			t.Errorf("interrupted jit request: %v; want exit 130 and how to resume", res)
		}
		found := false
		for _, r := range pendingRequests(t, bob) {
			found = found || r.ID == id
		}
		if !found {
			t.Errorf("request %s is not pending after the interrupt", id)
		}
		mustRun(t, alice, "cancel", id)
	})

	t.Run("two distinct approvers", func(t *testing.T) {
		// With --key, jit wait must find the external key again.
		own := newEngineer(t, "alice-hw")
		id := strings.TrimSpace(mustRun(t, alice, "request", "db2", "--login", login, "--reason", "two person rule change", "--no-wait", "--key", pubFile(t, own)))
		ids["two"] = id
		if out := mustRun(t, bob, "approve", id); !strings.Contains(out, "pending (1/2 approvals)") {
			t.Errorf("first approval printed %q, want still pending with 1/2", out)
		}
		if _, stderr, code := run(t, bob, "approve", id); code == 0 || !strings.Contains(stderr, "already_decided") {
			t.Errorf("bob approving twice: exit %d, stderr %q; want an already_decided refusal", code, stderr)
		}
		if _, stderr, code := run(t, alice, "wait", id, "--timeout", "1s"); code != 4 {
			t.Errorf("jit wait with one of two approvals: exit %d, stderr %q; want 4 (still pending)", code, stderr)
		}
		if exists(keyFile("db2") + "-cert.pub") {
			t.Fatal("one approval of two issued a certificate")
		}
		if out := mustRun(t, dave, "approve", id); !strings.Contains(out, "approved (2/2 approvals)") {
			t.Errorf("second approval printed %q, want approved with 2/2", out)
		}
		g := parseGrant(t, mustRun(t, alice, "wait", id, "--format", "json"))
		cert := readCert(t, g.CertificateFile)
		if target, err := os.Readlink(g.KeyFile); err != nil || target != own.Key {
			t.Errorf("grant key %s links to %q (%v), want the --key's private key %s", g.KeyFile, target, err, own.Key)
		}
		if len(cert.ValidPrincipals) != 1 || cert.ValidPrincipals[0] != login+"@db2" {
			t.Errorf("principals %q, want exactly %s@db2", cert.ValidPrincipals, login)
		}
		if want := "jit:" + id + ":alice"; cert.KeyId != want {
			t.Errorf("key id %q, want %q", cert.KeyId, want)
		}
	})

	t.Run("break-glass", func(t *testing.T) {
		if _, stderr, code := run(t, alice, "request", "db1", "--login", login, "--reason", "INC-13 db1 is down", "--break-glass", "--no-wait"); code != 3 || !strings.Contains(stderr, "break_glass_not_allowed") {
			t.Errorf("break-glass where the role does not allow it: exit %d, stderr %q; want 3 and break_glass_not_allowed", code, stderr)
		}
		g := parseGrant(t, mustRun(t, alice, "request", "db5", "--login", login, "--reason", "INC-13 db5 is down, paging", "--break-glass", "--format", "json"))
		ids["break-glass"] = g.Request.ID
		var listed []string
		dec := json.NewDecoder(strings.NewReader(mustRun(t, auditor, "requests", "--break-glass", "--format", "json")))
		for dec.More() {
			var r struct {
				ID         string `json:"id"`
				BreakGlass bool   `json:"break_glass"`
			}
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			if !r.BreakGlass {
				t.Errorf("jit requests --break-glass lists %s, which is not flagged", r.ID)
			}
			listed = append(listed, r.ID)
		}
		if len(listed) != 1 || listed[0] != g.Request.ID {
			t.Errorf("jit requests --break-glass lists %v, want only %s", listed, g.Request.ID)
		}
	})

	t.Run("requester's own list", func(t *testing.T) {
		states := map[string]string{}
		dec := json.NewDecoder(strings.NewReader(mustRun(t, alice, "requests", "--format", "json")))
		for dec.More() {
			var r pendingRequest
			if err := dec.Decode(&r); err != nil {
				t.Fatal(err)
			}
			states[r.ID] = r.State
		}
		for scenario, want := range map[string]string{"approved": "issued", "denied": "denied", "expired": "expired", "cancelled": "cancelled", "two": "issued"} {
			if got := states[ids[scenario]]; got != want {
				t.Errorf("jit requests: %s request %s is %q, want %q", scenario, ids[scenario], got, want)
			}
		}
	})

	// Every outcome is in the audit trail, which verifies.
	evs := auditList(t, auditor)
	for _, want := range []struct {
		scenario, event, code, actor string
	}{
		{scenario: "approved", event: "request.created", code: "approval_required", actor: "alice"},
		{scenario: "approved", event: "approval.refused", code: "self_approval", actor: "alice"},
		{scenario: "approved", event: "approval.refused", code: "not_approver", actor: "carol"},
		{scenario: "approved", event: "request.approved", code: "approve", actor: "bob"},
		{scenario: "approved", event: "cert.issued", code: "", actor: "alice"},
		{scenario: "approved", event: "approval.refused", code: "not_pending", actor: "dave"},
		{scenario: "expired", event: "request.expired", code: "", actor: ""},
		{scenario: "expired", event: "approval.refused", code: "", actor: "bob"},
		{scenario: "denied", event: "request.denied", code: "deny", actor: "bob"},
		{scenario: "denied", event: "approval.refused", code: "not_pending", actor: "dave"},
		{scenario: "cancelled", event: "request.cancelled", code: "cancelled", actor: "alice"},
		{scenario: "two", event: "request.approval", code: "approve", actor: "bob"},
		{scenario: "two", event: "approval.refused", code: "already_decided", actor: "bob"},
		{scenario: "two", event: "request.approved", code: "approve", actor: "dave"},
		{scenario: "two", event: "cert.issued", code: "", actor: "alice"},
		{scenario: "break-glass", event: "request.created", code: "break_glass", actor: "alice"},
		{scenario: "break-glass", event: "cert.issued", code: "", actor: "alice"},
	} {
		id := ids[want.scenario]
		if id == "" {
			t.Errorf("scenario %q did not get as far as a request", want.scenario)
			continue
		}
		_, ok := findEvent(evs, want.event, func(ev auditEvent) bool {
			return ev.RequestID == id && (want.code == "" || code(ev) == want.code) && (want.actor == "" || ev.Actor == want.actor)
		})
		if !ok {
			t.Errorf("%s: no %s event (code %q, actor %q) for request %s", want.scenario, want.event, want.code, want.actor, id)
		}
	}
	if _, ok := findEvent(evs, "cert.issued", func(ev auditEvent) bool {
		return ev.RequestID == ids["denied"] || ev.RequestID == ids["expired"] || ev.RequestID == ids["cancelled"]
	}); ok {
		t.Error("a certificate was issued for a denied, expired or cancelled request")
	}
	if t.Failed() {
		for _, ev := range evs {
			t.Logf("audit: %s %s actor=%s request=%s %q", ev.Event, code(ev), ev.Actor, ev.RequestID, ev.Message)
		}
	}
	if out := mustRun(t, auditor, "audit", "verify"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("jit audit verify: %q, want ok", out)
	}
}

// pendingRequest is a line of `jit requests --pending --format json`.
type pendingRequest struct {
	ID, User, Host, Login, State string
}

func pendingRequests(t testing.TB, e *engineer) []pendingRequest {
	t.Helper()
	out := mustRun(t, e, "requests", "--pending", "--format", "json")
	var rs []pendingRequest
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var r pendingRequest
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("parse jit requests --pending output: %v\n%s", err, out)
		}
		rs = append(rs, r)
	}
	return rs
}
