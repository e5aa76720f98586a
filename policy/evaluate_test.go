package policy

import (
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

const evalPolicy = `
users:
  alice: {groups: [dev]}
  bob: {groups: [dev, approvers]}
  carol: {groups: [dev, oncall]}
  dave: {groups: [nobody]}
  eve: {groups: [dev, admins]}
  frank: {groups: [approvers]}
admins: {groups: [admins]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod, role: db}}
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
  ci1: {address: "127.0.0.1:2222", labels: {env: ci}}
roles:
  - name: staging
    groups: [dev]
    hosts: {labels: {env: staging}}
    logins: [deploy]
    ttl: 10m
    max_ttl: 1h
    justification: {min_length: 10}
    extensions: [permit-port-forwarding]
    source_addresses: [10.0.0.0/8, 192.168.0.0/16]
    force_command: /usr/local/bin/deploy
  - name: prod-deploy
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [deploy]
    max_ttl: 30m
    justification: {ticket: '^(INC|CHG)-[0-9]+'}
  - name: prod-root
    groups: [dev]
    hosts: {names: ["db*"], labels: {env: prod}}
    logins: [root]
    record_input: true
    approval:
      approvers: [approvers]
      count: 1
      auto_approve: {ticket: '^CHG-[0-9]+', schedule: "Mon-Fri 08:00-18:00 Europe/Berlin"}
    request_ttl: 20m
    redeem_ttl: 5m
  - name: emergency
    groups: [oncall]
    hosts: {names: ["*"]}
    logins: [root]
    ttl: 5m
    max_ttl: 15m
    approval: {approvers: [approvers]}
    break_glass: true
  - name: oncall-debug
    groups: [oncall]
    hosts: {labels: {env: staging}}
    logins: [debug]
    break_glass: true
`

func mustParse(t testing.TB, name, text string) *Policy {
	t.Helper()
	p, err := Parse(name, []byte(text))
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return p
}

func TestEvaluate(t *testing.T) {
	p := mustParse(t, "eval.yaml", evalPolicy)
	tuesdayOffice := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)   // 10:00 in Berlin
	saturday := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)        // Saturday
	tuesdayEvening := time.Date(2026, 11, 24, 17, 0, 0, 0, time.UTC) // 18:00 in Berlin: just outside
	routine := "routine deploy of release 42"

	tests := []struct {
		name        string
		req         Request
		now         time.Time
		wantOutcome Outcome
		wantReason  Reason
		wantRole    string
		wantTTL     time.Duration
		wantMsg     string
	}{
		{name: "allowed with role default ttl", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: routine},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "staging", wantTTL: 10 * time.Minute, wantMsg: `deploy@web1`},
		{name: "allowed with explicit ttl at max", req: Request{User: "alice", Host: "web1", Login: "deploy", TTL: time.Hour, Justification: routine},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "staging", wantTTL: time.Hour},
		{name: "invalid login", req: Request{User: "alice", Host: "web1", Login: "root@db1", Justification: routine},
			wantReason: ReasonInvalidLogin, wantMsg: `login name "root@db1"`},
		{name: "empty login", req: Request{User: "alice", Host: "web1", Justification: routine},
			wantReason: ReasonInvalidLogin, wantMsg: "login name is empty"},
		{name: "invalid host", req: Request{User: "alice", Host: "web1,db1", Login: "deploy", Justification: routine},
			wantReason: ReasonInvalidHost, wantMsg: `host name "web1,db1"`},
		{name: "wildcard host", req: Request{User: "alice", Host: "*", Login: "deploy", Justification: routine},
			wantReason: ReasonInvalidHost},
		{name: "unknown user", req: Request{User: "mallory", Host: "web1", Login: "deploy", Justification: routine},
			wantReason: ReasonUnknownUser, wantMsg: `"mallory"`},
		{name: "unknown host", req: Request{User: "alice", Host: "db9", Login: "deploy", Justification: routine},
			wantReason: ReasonUnknownHost, wantMsg: `"db9"`},
		{name: "admin may not request", req: Request{User: "eve", Host: "web1", Login: "deploy", Justification: routine},
			wantReason: ReasonAdminAccessForbidden, wantMsg: `"eve"`},
		{name: "negative ttl", req: Request{User: "alice", Host: "web1", Login: "deploy", TTL: -time.Second, Justification: routine},
			wantReason: ReasonTTLInvalid, wantMsg: "ttl -1s"},
		{name: "fractional ttl", req: Request{User: "alice", Host: "web1", Login: "deploy", TTL: 1500 * time.Millisecond, Justification: routine},
			wantReason: ReasonTTLInvalid, wantMsg: "whole number of seconds"},
		{name: "user in no role", req: Request{User: "dave", Host: "web1", Login: "deploy", Justification: routine},
			wantReason: ReasonNoRole, wantMsg: `"dave"`},
		{name: "host not allowed", req: Request{User: "alice", Host: "ci1", Login: "deploy", Justification: routine},
			wantReason: ReasonHostNotAllowed, wantRole: "staging", wantMsg: `host "ci1"`},
		{name: "login not allowed", req: Request{User: "alice", Host: "web1", Login: "admin", Justification: routine},
			wantReason: ReasonLoginNotAllowed, wantRole: "staging", wantMsg: `login "admin"`},
		{name: "ttl too long", req: Request{User: "alice", Host: "web1", Login: "deploy", TTL: 2 * time.Hour, Justification: routine},
			wantReason: ReasonTTLTooLong, wantRole: "staging", wantMsg: `ttl 2h exceeds role "staging" max_ttl 1h`},
		{name: "justification missing", req: Request{User: "alice", Host: "web1", Login: "deploy"},
			wantReason: ReasonJustificationMissing, wantRole: "staging", wantMsg: "justification"},
		{name: "justification only blanks", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "    "},
			wantReason: ReasonJustificationMissing, wantRole: "staging"},
		{name: "justification too short", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "   fix it   "},
			wantReason: ReasonJustificationTooShort, wantRole: "staging", wantMsg: "at least 10"},
		{name: "justification counted in runes", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "äöüäöüäöüä"},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "staging", wantTTL: 10 * time.Minute},
		{name: "justification too long", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: strings.Repeat("a", 1001)},
			wantReason: ReasonJustificationTooLong, wantRole: "staging", wantMsg: "1001"},
		{name: "justification with newline", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "deploy\nFAKE LOG LINE"},
			wantReason: ReasonJustificationInvalid, wantRole: "staging"},
		{name: "justification with tab", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "deploy\trelease 42"},
			wantReason: ReasonJustificationInvalid, wantRole: "staging"},
		{name: "justification with C1 control", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "deploy release\u009b42"},
			wantReason: ReasonJustificationInvalid, wantRole: "staging"},
		{name: "justification with DEL", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "deploy release\x7f42"},
			wantReason: ReasonJustificationInvalid, wantRole: "staging"},
		{name: "justification invalid utf-8", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "deploy release \xff42"},
			wantReason: ReasonJustificationInvalid, wantRole: "staging"},
		{name: "ticket mismatch", req: Request{User: "alice", Host: "db1", Login: "deploy", Justification: "no ticket here"},
			wantReason: ReasonTicketMismatch, wantRole: "prod-deploy", wantMsg: `^(INC|CHG)-[0-9]+`},
		{name: "ticket matches", req: Request{User: "alice", Host: "db1", Login: "deploy", Justification: "INC-7 hotfix"},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "prod-deploy", wantTTL: 10 * time.Minute},
		{name: "approval required outside schedule", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "CHG-7 upgrade"},
			now: saturday, wantOutcome: NeedsApproval, wantReason: ReasonApprovalRequired, wantRole: "prod-root", wantTTL: 10 * time.Minute, wantMsg: `"approvers"`},
		{name: "approval required at end of window", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "CHG-7 upgrade"},
			now: tuesdayEvening, wantOutcome: NeedsApproval, wantReason: ReasonApprovalRequired, wantRole: "prod-root", wantTTL: 10 * time.Minute},
		{name: "approval required without change ticket", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "INC-7 disk full"},
			now: tuesdayOffice, wantOutcome: NeedsApproval, wantReason: ReasonApprovalRequired, wantRole: "prod-root", wantTTL: 10 * time.Minute},
		{name: "auto approved", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "CHG-7 upgrade"},
			now: tuesdayOffice, wantOutcome: Allow, wantReason: ReasonAutoApproved, wantRole: "prod-root", wantTTL: 10 * time.Minute},
		{name: "auto approval preferred over approval", req: Request{User: "carol", Host: "db1", Login: "root", Justification: "CHG-7 upgrade"},
			now: tuesdayOffice, wantOutcome: Allow, wantReason: ReasonAutoApproved, wantRole: "prod-root", wantTTL: 10 * time.Minute},
		{name: "first role wins among approvals", req: Request{User: "carol", Host: "db1", Login: "root", Justification: "INC-1 outage"},
			now: saturday, wantOutcome: NeedsApproval, wantReason: ReasonApprovalRequired, wantRole: "prod-root", wantTTL: 10 * time.Minute},
		{name: "break glass", req: Request{User: "carol", Host: "db1", Login: "root", Justification: "INC-1 outage", BreakGlass: true},
			now: saturday, wantOutcome: Allow, wantReason: ReasonBreakGlass, wantRole: "emergency", wantTTL: 5 * time.Minute, wantMsg: "BREAK-GLASS"},
		{name: "break glass skips roles without break glass", req: Request{User: "carol", Host: "db1", Login: "root", Justification: "CHG-1 upgrade", BreakGlass: true},
			now: tuesdayOffice, wantOutcome: Allow, wantReason: ReasonBreakGlass, wantRole: "emergency", wantTTL: 5 * time.Minute},
		{name: "break glass not flagged when no approval needed", req: Request{User: "carol", Host: "web1", Login: "debug", Justification: "INC-1 outage", BreakGlass: true},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "oncall-debug", wantTTL: 10 * time.Minute},
		{name: "break glass not allowed", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: routine, BreakGlass: true},
			wantReason: ReasonBreakGlassNotAllowed, wantRole: "staging", wantMsg: `role "staging"`},
		{name: "break glass role without membership", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "INC-1 outage", BreakGlass: true},
			wantReason: ReasonBreakGlassNotAllowed, wantRole: "prod-root"},
		{name: "deny reports the furthest role", req: Request{User: "alice", Host: "db1", Login: "deploy", TTL: 45 * time.Minute, Justification: "INC-1 x"},
			wantReason: ReasonTTLTooLong, wantRole: "prod-deploy", wantMsg: `ttl 45m exceeds role "prod-deploy" max_ttl 30m`},
		{name: "break glass ttl above emergency max", req: Request{User: "carol", Host: "web1", Login: "root", TTL: 20 * time.Minute, Justification: "INC-1 outage", BreakGlass: true},
			wantReason: ReasonTTLTooLong, wantRole: "emergency"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := tt.now
			if now.IsZero() {
				now = tuesdayOffice
			}
			d := p.Evaluate(tt.req, now)
			if d.Outcome != tt.wantOutcome || d.Reason != tt.wantReason || d.Role != tt.wantRole || d.TTL != tt.wantTTL {
				t.Fatalf("Evaluate = {%v %s role=%q ttl=%v %q}, want {%v %s role=%q ttl=%v}",
					d.Outcome, d.Reason, d.Role, d.TTL, d.Message, tt.wantOutcome, tt.wantReason, tt.wantRole, tt.wantTTL)
			}
			if !strings.Contains(d.Message, tt.wantMsg) {
				t.Errorf("Message = %q, want it to contain %q", d.Message, tt.wantMsg)
			}
			checkDecisionShape(t, tt.req, d)
		})
	}
}

// checkDecisionShape checks what every decision promises regardless of
// the case: denies carry no grant, grants carry exactly LOGIN@HOST.
func checkDecisionShape(t *testing.T, req Request, d Decision) {
	t.Helper()
	if d.Reason == "" || d.Message == "" {
		t.Errorf("decision without reason or message: %+v", d)
	}
	if d.Outcome == Deny {
		if d.Principals != nil || d.Extensions != nil || d.CriticalOptions != nil || d.TTL != 0 || d.Approval != nil || d.BreakGlass {
			t.Errorf("deny carries grant fields: %+v", d)
		}
		return
	}
	if want := []string{req.Login + "@" + req.Host}; !slices.Equal(d.Principals, want) {
		t.Errorf("Principals = %q, want %q", d.Principals, want)
	}
	if _, ok := d.Extensions["permit-pty"]; !ok {
		t.Errorf("Extensions = %v, want permit-pty", d.Extensions)
	}
	if d.TTL <= 0 {
		t.Errorf("TTL = %v, want positive", d.TTL)
	}
	if d.BreakGlass != (d.Reason == ReasonBreakGlass) {
		t.Errorf("BreakGlass = %v with reason %s", d.BreakGlass, d.Reason)
	}
}

func TestEvaluateGrantFields(t *testing.T) {
	p := mustParse(t, "eval.yaml", evalPolicy)
	now := time.Date(2026, 11, 28, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name           string
		req            Request
		wantExtensions map[string]string
		wantCritical   map[string]string
		wantRecord     bool
		wantApproval   bool
		wantRequestTTL time.Duration
		wantRedeemTTL  time.Duration
	}{
		{name: "options and extensions from role",
			req:            Request{User: "alice", Host: "web1", Login: "deploy", Justification: "routine deploy"},
			wantExtensions: map[string]string{"permit-pty": "", "permit-port-forwarding": ""},
			wantCritical:   map[string]string{"source-address": "10.0.0.0/8,192.168.0.0/16", "force-command": "/usr/local/bin/deploy"},
			wantRequestTTL: DefaultRequestTTL, wantRedeemTTL: DefaultRedeemTTL},
		{name: "no options when unset",
			req:            Request{User: "alice", Host: "db1", Login: "deploy", Justification: "CHG-1 release"},
			wantExtensions: map[string]string{"permit-pty": ""},
			wantCritical:   map[string]string{},
			wantRequestTTL: DefaultRequestTTL, wantRedeemTTL: DefaultRedeemTTL},
		{name: "approval carried",
			req:            Request{User: "alice", Host: "db1", Login: "root", Justification: "INC-1 look at db"},
			wantExtensions: map[string]string{"permit-pty": ""},
			wantCritical:   map[string]string{},
			wantRecord:     true, wantApproval: true,
			wantRequestTTL: 20 * time.Minute, wantRedeemTTL: 5 * time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(tt.req, now)
			if d.Outcome == Deny {
				t.Fatalf("Evaluate denied: %s %s", d.Reason, d.Message)
			}
			if !maps.Equal(d.Extensions, tt.wantExtensions) {
				t.Errorf("Extensions = %v, want %v", d.Extensions, tt.wantExtensions)
			}
			if !maps.Equal(d.CriticalOptions, tt.wantCritical) {
				t.Errorf("CriticalOptions = %v, want %v", d.CriticalOptions, tt.wantCritical)
			}
			if d.RecordInput != tt.wantRecord || (d.Approval != nil) != tt.wantApproval {
				t.Errorf("RecordInput=%v Approval=%v, want %v %v", d.RecordInput, d.Approval, tt.wantRecord, tt.wantApproval)
			}
			if d.RequestTTL != tt.wantRequestTTL || d.RedeemTTL != tt.wantRedeemTTL {
				t.Errorf("RequestTTL=%v RedeemTTL=%v, want %v %v", d.RequestTTL, d.RedeemTTL, tt.wantRequestTTL, tt.wantRedeemTTL)
			}
			// A caller changing its decision must not change the policy.
			d.Extensions["permit-agent-forwarding"] = ""
			if d.Approval != nil {
				d.Approval.Approvers[0] = "everyone"
				d.Approval.AutoApprove.Ticket = nil
			}
			again := p.Evaluate(tt.req, now)
			if !maps.Equal(again.Extensions, tt.wantExtensions) {
				t.Errorf("second Extensions = %v: decision shares state with the policy", again.Extensions)
			}
			if again.Approval != nil && again.Approval.AutoApprove.Ticket == nil {
				t.Error("second Approval.AutoApprove lost its ticket: decision shares state with the policy")
			}
			if again.Approval != nil && again.Approval.Approvers[0] != "approvers" {
				t.Errorf("second Approval.Approvers = %q: decision shares state with the policy", again.Approval.Approvers)
			}
		})
	}
}

func TestEvaluateAdminsMayRequest(t *testing.T) {
	text := strings.Replace(evalPolicy, "admins: {groups: [admins]}", "admins: {groups: [admins], may_request_access: true}", 1)
	p := mustParse(t, "eval.yaml", text)
	d := p.Evaluate(Request{User: "eve", Host: "web1", Login: "deploy", Justification: "routine deploy"}, time.Time{})
	if d.Outcome != Allow || d.Reason != ReasonAllowed {
		t.Fatalf("Evaluate = %v %s %q, want allow", d.Outcome, d.Reason, d.Message)
	}
}

func TestEvaluateLiteralPolicyFailsClosed(t *testing.T) {
	// A Policy built in code without Parse's defaults must not grant
	// zero-length or unbounded certificates.
	p := &Policy{
		Users: map[string]User{"alice": {Name: "alice", Groups: []string{"dev"}}},
		Hosts: map[string]Host{"db1": {Name: "db1", Address: "127.0.0.1:22"}},
		Roles: []Role{
			{Name: "no-selector", Groups: []string{"dev"}, Logins: []string{"root"}, TTL: time.Minute, MaxTTL: time.Hour},
			{Name: "zero-ttl", Groups: []string{"dev"}, Hosts: HostSelector{Names: []string{"db1"}}, Logins: []string{"root"}},
		},
	}
	tests := []struct {
		name       string
		req        Request
		wantReason Reason
	}{
		{name: "role default ttl zero", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "x"}, wantReason: ReasonTTLInvalid},
		{name: "max ttl zero", req: Request{User: "alice", Host: "db1", Login: "root", TTL: time.Minute, Justification: "x"}, wantReason: ReasonTTLTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(tt.req, time.Time{})
			if d.Outcome != Deny || d.Reason != tt.wantReason {
				t.Fatalf("Evaluate = %v %s %q, want deny %s", d.Outcome, d.Reason, d.Message, tt.wantReason)
			}
		})
	}
}

func TestOutcomeString(t *testing.T) {
	tests := []struct {
		outcome Outcome
		want    string
	}{
		{outcome: Deny, want: "deny"},
		{outcome: Allow, want: "allow"},
		{outcome: NeedsApproval, want: "needs_approval"},
		{outcome: Outcome(9), want: "outcome(9)"},
	}
	for _, tt := range tests {
		if got := tt.outcome.String(); got != tt.want {
			t.Errorf("Outcome(%d).String() = %q, want %q", int(tt.outcome), got, tt.want)
		}
	}
}
