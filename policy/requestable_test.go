package policy

import (
	"reflect"
	"testing"
	"time"
)

func TestRequestable(t *testing.T) {
	p := mustParse(t, "eval.yaml", evalPolicy)
	staging := RequestableLogin{Login: "deploy", Role: "staging", MaxTTL: time.Hour}
	prodDeploy := RequestableLogin{Login: "deploy", Role: "prod-deploy", Ticket: true, MaxTTL: 30 * time.Minute}
	prodRoot := RequestableLogin{Login: "root", Role: "prod-root", Approval: true, MaxTTL: DefaultMaxTTL}
	emergency := RequestableLogin{Login: "root", Role: "emergency", Approval: true, MaxTTL: 15 * time.Minute}
	debug := RequestableLogin{Login: "debug", Role: "oncall-debug", MaxTTL: DefaultMaxTTL}
	db1 := func(l ...RequestableLogin) Requestable {
		return Requestable{Host: "db1", Labels: map[string]string{"env": "prod", "role": "db"}, Logins: l}
	}
	web1 := func(l ...RequestableLogin) Requestable {
		return Requestable{Host: "web1", Labels: map[string]string{"env": "staging"}, Logins: l}
	}
	ci1 := func(l ...RequestableLogin) Requestable {
		return Requestable{Host: "ci1", Labels: map[string]string{"env": "ci"}, Logins: l}
	}
	for _, tc := range []struct {
		name, user string
		policy     *Policy
		want       []Requestable
	}{
		{name: "roles by label and glob", user: "alice", want: []Requestable{db1(prodDeploy, prodRoot), web1(staging)}},
		{name: "a second group adds a role on every host, sorted by login", user: "carol",
			want: []Requestable{ci1(emergency), db1(prodDeploy, prodRoot, emergency), web1(debug, staging, emergency)}},
		{name: "in no role", user: "dave"},
		{name: "approver only", user: "frank"},
		{name: "unknown user", user: "mallory"},
		{name: "admin while admins may not request", user: "eve"},
		{name: "admin while admins may request", user: "eve", policy: func() *Policy {
			q := *p
			q.Admins.MayRequestAccess = true
			return &q
		}(), want: []Requestable{db1(prodDeploy, prodRoot), web1(staging)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pol := p
			if tc.policy != nil {
				pol = tc.policy
			}
			got := pol.Requestable(tc.user)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Requestable(%q) =\n%+v\nwant\n%+v", tc.user, got, tc.want)
			}
			// Whatever it lists, Evaluate must not call an unknown host or a
			// login no role allows.
			for _, r := range got {
				for _, l := range r.Logins {
					d := pol.Evaluate(Request{User: tc.user, Host: r.Host, Login: l.Login, Justification: "CHG-1 INC-1 a long enough reason"}, time.Date(2026, 11, 24, 9, 0, 0, 0, time.UTC))
					if d.Reason == ReasonUnknownHost || d.Reason == ReasonHostNotAllowed || d.Reason == ReasonLoginNotAllowed {
						t.Errorf("listed %s@%s but Evaluate says %s: %s", l.Login, r.Host, d.Reason, d.Message)
					}
				}
			}
		})
	}
	// The labels are the caller's copy.
	p.Requestable("alice")[0].Labels["env"] = "changed"
	if p.Hosts["db1"].Labels["env"] != "prod" {
		t.Error("changing a returned label changed the policy")
	}
}
