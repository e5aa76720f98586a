package policy

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// fuzzNow is a fixed time so that fuzz results are reproducible.
func fuzzNow() time.Time { return time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC) }

func FuzzParse(f *testing.F) {
	f.Add(Demo())
	f.Add([]byte(evalPolicy))
	f.Add([]byte(base))
	f.Add([]byte(ephemeralBase + "    account_groups: [adm]\n    sudo: [/usr/bin/id -u]\n    shell: /bin/sh\n"))
	f.Add([]byte(ephemeralBase + "    sudo: all\n"))
	f.Add([]byte("users: {a: {groups: [g]}}\nroles: [{name: r, groups: [g], hosts: {names: ['*']}, logins: [l]}]\n"))
	f.Add([]byte("users: {a: {groups: [g]}}\nsso: {groups: {eng: [g]}, key_login: admins-only, key_login_allow: [a]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.yaml") {
				t.Fatalf("error %q does not start with the file name", err)
			}
			return
		}
		// Whatever parses must evaluate without panicking and keep the
		// decision invariants, for every user, host, login and role.
		for user := range p.Users {
			for host := range p.Hosts {
				for _, r := range p.Roles {
					if r.Account != nil {
						req := Request{User: user, Host: host, Login: EphemeralLogin(user, "req_fuzz", 0), Ephemeral: true, Justification: "INC-1 CHG-2 fuzzing the policy"}
						checkInvariants(t, p, req, p.Evaluate(req, fuzzNow()))
						if err := checkSudoRules(r.Account); err != nil {
							t.Fatalf("role %q: %v", r.Name, err)
						}
					}
					for _, login := range r.Logins {
						for _, bg := range []bool{false, true} {
							req := Request{User: user, Host: host, Login: login, Justification: "INC-1 CHG-2 fuzzing the policy", BreakGlass: bg}
							checkInvariants(t, p, req, p.Evaluate(req, fuzzNow()))
						}
					}
					p.CanApprove(user, "someone", r.Name)
				}
			}
			p.IsAdmin(user)
			p.IsAuditor(user)
		}
	})
}

func FuzzEvaluate(f *testing.F) {
	f.Add("alice", "web1", "deploy", int64(0), "routine deploy of release 42", false)
	f.Add("carol", "db1", "root", int64(5*time.Minute), "INC-1 outage", true)
	f.Add("alice", "db1", "root", int64(-1), "CHG-7 upgrade", false)
	f.Add("bob", "db1,web1", "root@db1", int64(time.Hour), "x\ny", false)
	p := mustParse(f, "eval.yaml", evalPolicy)
	f.Fuzz(func(t *testing.T, user, host, login string, ttl int64, justification string, breakGlass bool) {
		req := Request{User: user, Host: host, Login: login, TTL: time.Duration(ttl), Justification: justification, BreakGlass: breakGlass}
		checkInvariants(t, p, req, p.Evaluate(req, fuzzNow()))
	})
}

// checkInvariants checks the promises every Decision makes.
func checkInvariants(t *testing.T, p *Policy, req Request, d Decision) {
	t.Helper()
	if d.Reason == "" || d.Message == "" {
		t.Fatalf("decision without reason or message: %+v", d)
	}
	if d.Outcome == Deny {
		if d.Principals != nil || d.TTL != 0 || d.BreakGlass {
			t.Fatalf("deny carries a grant: %+v", d)
		}
		return
	}
	if ValidName("login", req.Login) != nil || ValidName("host", req.Host) != nil {
		t.Fatalf("granted invalid names %q@%q", req.Login, req.Host)
	}
	if !slices.Equal(d.Principals, []string{req.Login + "@" + req.Host}) {
		t.Fatalf("Principals = %q for %q@%q", d.Principals, req.Login, req.Host)
	}
	r, ok := p.Role(d.Role)
	if !ok {
		t.Fatalf("decision names unknown role %q", d.Role)
	}
	if d.TTL <= 0 || d.TTL > r.MaxTTL || d.TTL > MaxTTLLimit {
		t.Fatalf("TTL %v outside (0, %v]", d.TTL, r.MaxTTL)
	}
	// An ephemeral request is decided by an ephemeral role only, and
	// carries its account rule; a named login by a role listing it.
	covers := slices.Contains(r.Logins, req.Login) && r.Account == nil && d.Account == nil
	if req.Ephemeral {
		covers = r.Account != nil && d.Account != nil && ValidEphemeralLogin(req.Login) == nil
	}
	if !covers || !r.Hosts.Matches(p.Hosts[req.Host]) {
		t.Fatalf("role %q does not cover %q@%q", r.Name, req.Login, req.Host)
	}
	if u, ok := p.Users[req.User]; !ok || !intersects(u.Groups, r.Groups) {
		t.Fatalf("user %q is not in role %q", req.User, r.Name)
	}
	if d.BreakGlass && (!req.BreakGlass || !r.BreakGlass) {
		t.Fatalf("break-glass grant without break-glass request and role: %+v", d)
	}
	if (d.Outcome == NeedsApproval) != (d.Reason == ReasonApprovalRequired) {
		t.Fatalf("outcome %v with reason %s", d.Outcome, d.Reason)
	}
	if r.Approval != nil && d.Reason == ReasonAllowed {
		t.Fatalf("role %q needs approval but reason is %s", r.Name, d.Reason)
	}
}

// checkSudoRules checks what the parser promises of an account rule: the
// helper gets either nothing, ["ALL"] or command lines without sudoers
// syntax.
func checkSudoRules(a *AccountRule) error {
	rules := a.SudoRules()
	if a.SudoAll && (len(rules) != 1 || rules[0] != "ALL") {
		return fmt.Errorf("sudo all gives %q", rules)
	}
	for _, c := range a.Sudo {
		if err := checkSudoCommand(c); err != nil {
			return err
		}
	}
	return checkShell(a.Shell)
}
