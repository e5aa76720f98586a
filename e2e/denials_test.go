package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

// denialsPolicy has one role for dev on db1 and an admin who may not ask
// for host access even though a role names the admins group.
const denialsPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  root-admin: {groups: [admins, dev], keys: [{{index .Key "root-admin"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
admins: {groups: [admins], may_request_access: false}
auditors: {groups: [secops]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
roles:
  - name: prod-db
    groups: [dev]
    hosts: {names: [db1]}
    logins: [deploy]
    max_ttl: 30m
    justification: {min_length: 10, ticket: '^(INC|CHG)-[0-9]+'}
`

// TestDenialsThroughCLI checks that every refusal reaches the engineer as
// exit code 3 with a message naming the field, issues nothing, and is in
// the audit trail with its reason code.
func TestDenialsThroughCLI(t *testing.T) {
	t.Parallel()
	alice, admin, auditor := newEngineer(t, "alice"), newEngineer(t, "root-admin"), newEngineer(t, "auditor")
	d := startDaemon(t, renderPolicy(t, denialsPolicy, "deploy", []*engineer{alice, admin, auditor}, nil))
	for _, e := range []*engineer{alice, admin, auditor} {
		d.login(t, e)
	}

	tests := []struct {
		name      string
		who       *engineer
		host      string
		login     string
		reason    string
		ttl       string
		wantCode  int
		wantField string // the stderr message names it
		auditCode string
	}{
		{name: "unknown host", who: alice, host: "db9", login: "deploy", reason: "CHG-2 look at db9", wantCode: 3, wantField: `host "db9"`, auditCode: "unknown_host"},
		{name: "host no role selects", who: alice, host: "web1", login: "deploy", reason: "CHG-3 look at web1", wantCode: 3, wantField: "web1", auditCode: "host_not_allowed"},
		{name: "login not allowed", who: alice, host: "db1", login: "postgres", reason: "CHG-4 vacuum the tables", wantCode: 3, wantField: `login "postgres"`, auditCode: "login_not_allowed"},
		{name: "justification too short", who: alice, host: "db1", login: "deploy", reason: "CHG-5", wantCode: 3, wantField: "justification", auditCode: "justification_too_short"},
		{name: "no ticket", who: alice, host: "db1", login: "deploy", reason: "just looking around", wantCode: 3, wantField: "justification", auditCode: "ticket_mismatch"},
		{name: "ttl too long", who: alice, host: "db1", login: "deploy", reason: "CHG-6 long migration", ttl: "2h", wantCode: 3, wantField: "ttl", auditCode: "ttl_too_long"},
		{name: "admin may not request access", who: admin, host: "db1", login: "deploy", reason: "CHG-7 admin wants in", wantCode: 3, wantField: "admin", auditCode: "admin_access_forbidden"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"request", tc.host, "--login", tc.login, "--reason", tc.reason}
			if tc.ttl != "" {
				args = append(args, "--ttl", tc.ttl)
			}
			stdout, stderr, code := run(t, tc.who, args...)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.wantCode, stdout, stderr)
			}
			if !strings.Contains(stderr, tc.wantField) || !strings.Contains(stderr, tc.auditCode) {
				t.Errorf("stderr %q does not name %q and code %s", stderr, tc.wantField, tc.auditCode)
			}
			if stdout != "" {
				t.Errorf("a denial printed on stdout: %q", stdout)
			}
			if matches, _ := filepath.Glob(filepath.Join(tc.who.Home, "state", "keys", "*-cert.pub")); len(matches) != 0 {
				t.Errorf("a denial left certificates: %v", matches)
			}
		})
	}

	evs := auditList(t, auditor, "--event", "request.denied")
	for _, tc := range tests {
		_, ok := findEvent(evs, "request.denied", func(ev auditEvent) bool {
			return code(ev) == tc.auditCode && ev.User == tc.who.Name && ev.Host == tc.host && ev.Login == tc.login
		})
		if !ok {
			t.Errorf("%s: no request.denied event with code %s for %s, %s@%s in %+v", tc.name, tc.auditCode, tc.who.Name, tc.login, tc.host, evs)
		}
	}
	if all := auditList(t, auditor); len(all) == 0 {
		t.Error("empty audit trail")
	} else if _, ok := findEvent(all, "cert.issued", nil); ok {
		t.Error("a certificate was issued although every request was denied")
	}
	if out := mustRun(t, auditor, "audit", "verify"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("jit audit verify: %q, want ok", out)
	}
}
