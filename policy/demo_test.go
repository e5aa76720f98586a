package policy

import (
	"testing"
	"time"
)

func TestDemoParses(t *testing.T) {
	p, err := Parse("demo.yaml", Demo())
	if err != nil {
		t.Fatalf("Parse(Demo()) = %v", err)
	}
	for _, name := range []string{"alice", "bob", "carol", "secops-admin", "auditor"} {
		if _, ok := p.User(name); !ok {
			t.Errorf("demo policy lacks user %q", name)
		}
	}
	if !p.IsAdmin("secops-admin") || p.IsAdmin("alice") {
		t.Errorf("IsAdmin: secops-admin=%v alice=%v, want true false", p.IsAdmin("secops-admin"), p.IsAdmin("alice"))
	}
	if !p.IsAuditor("auditor") || p.IsAuditor("bob") {
		t.Errorf("IsAuditor: auditor=%v bob=%v, want true false", p.IsAuditor("auditor"), p.IsAuditor("bob"))
	}
	if r, ok := p.Role("staging-oneoff"); !ok || r.Account == nil || len(r.Logins) != 0 {
		t.Errorf("demo policy lacks the ephemeral role staging-oneoff: %+v", r)
	}
	d := Demo()
	d[0] = 'X'
	if Demo()[0] == 'X' {
		t.Error("Demo returned shared bytes")
	}
}

// TestDemoDecisions pins what the demo policy promises to people trying
// jitssh out, and to other packages' tests that use it.
func TestDemoDecisions(t *testing.T) {
	p, err := Parse("demo.yaml", Demo())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		req         Request
		wantOutcome Outcome
		wantReason  Reason
		wantRole    string
	}{
		{name: "routine staging deploy", req: Request{User: "alice", Host: "web1", Login: "deploy", Justification: "deploy release 42"},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "staging-deploy"},
		{name: "prod deploy with ticket", req: Request{User: "carol", Host: "db1", Login: "deploy", Justification: "CHG-1234 roll out release 42"},
			wantOutcome: Allow, wantReason: ReasonAllowed, wantRole: "prod-deploy"},
		{name: "prod deploy without ticket", req: Request{User: "carol", Host: "db1", Login: "deploy", Justification: "roll out release 42"},
			wantReason: ReasonTicketMismatch, wantRole: "prod-deploy"},
		{name: "root on prod needs approval", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "INC-7 database is stuck"},
			wantOutcome: NeedsApproval, wantReason: ReasonApprovalRequired, wantRole: "prod-root"},
		{name: "break glass", req: Request{User: "alice", Host: "db1", Login: "root", Justification: "INC-7 database is down, all hands", BreakGlass: true},
			wantOutcome: Allow, wantReason: ReasonBreakGlass, wantRole: "emergency"},
		{name: "admin identity", req: Request{User: "secops-admin", Host: "db1", Login: "root", Justification: "INC-7 database is stuck"},
			wantReason: ReasonAdminAccessForbidden},
		{name: "auditor has no role", req: Request{User: "auditor", Host: "web1", Login: "deploy", Justification: "deploy release 42"},
			wantReason: ReasonNoRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(tt.req, now)
			if d.Outcome != tt.wantOutcome || d.Reason != tt.wantReason || d.Role != tt.wantRole {
				t.Errorf("Evaluate = %v %s %q (%s), want %v %s %q", d.Outcome, d.Reason, d.Role, d.Message, tt.wantOutcome, tt.wantReason, tt.wantRole)
			}
		})
	}
	if ok, reason := p.CanApprove("bob", "alice", "prod-root"); !ok {
		t.Errorf("bob cannot approve alice's prod-root request: %s", reason)
	}
	if ok, reason := p.CanApprove("bob", "bob", "prod-root"); ok || reason != ReasonSelfApproval {
		t.Errorf("CanApprove(bob, bob) = %v %s, want false self_approval", ok, reason)
	}
}
