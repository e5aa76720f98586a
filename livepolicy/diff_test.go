package livepolicy

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/policy"
)

func TestDiff(t *testing.T) {
	demo := string(policy.Demo())
	parse := func(t *testing.T, text string) *policy.Policy {
		t.Helper()
		p, err := policy.Parse("policy.yaml", []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name string
		edit *strings.Replacer
		want string
	}{
		{name: "same text parsed twice", edit: strings.NewReplacer(), want: "no change"},
		{name: "comment only", edit: strings.NewReplacer("# Who is who.", "# Who's who."), want: "no change"},
		{name: "user groups", edit: strings.NewReplacer("carol: {groups: [dev]", "carol: {groups: [dev, approvers]"), want: "users ~carol"},
		{name: "user added and removed", edit: strings.NewReplacer("  carol:", "  dave:"), want: "users +dave -carol"},
		{name: "host address", edit: strings.NewReplacer(`db1: {address: "127.0.0.1:22"`, `db1: {address: "127.0.0.1:23"`), want: "hosts ~db1"},
		{name: "host labels", edit: strings.NewReplacer("env: staging, role: web", "env: staging, role: api"), want: "hosts ~web1"},
		{name: "role ticket", edit: strings.NewReplacer("ticket: '^(INC|CHG)-[0-9]+'}\n    record_input", "ticket: '^INC-[0-9]+'}\n    record_input"), want: "roles ~prod-root"},
		{name: "role approval count", edit: strings.NewReplacer("count: 1", "count: 2"), want: "roles ~emergency ~prod-root"},
		{name: "role renamed", edit: strings.NewReplacer("name: prod-deploy", "name: prod-release"), want: "roles +prod-release -prod-deploy"},
		{name: "auto-approval schedule", edit: strings.NewReplacer("# auto_approve:", "auto_approve:"), want: "roles ~prod-root"},
		{name: "admins", edit: strings.NewReplacer("may_request_access: false", "may_request_access: true"), want: "admin or auditor rules changed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			after := tc.edit.Replace(demo)
			if tc.want != "no change" && after == demo {
				t.Fatal("the edit did not apply to the demo policy")
			}
			if got := Diff(parse(t, demo), parse(t, after)).String(); got != tc.want {
				t.Errorf("Diff = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestChangeLogValue(t *testing.T) {
	c := Change{Users: Names{Added: []string{"a", "b"}}, Roles: Names{Changed: []string{"r"}}}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("policy reloaded", "change", c)
	for _, want := range []string{`change.summary="users +a +b; roles ~r"`, "change.users_added=2", "change.roles_changed=1"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("log line %q lacks %q", b.String(), want)
		}
	}
	if strings.Contains(b.String(), "hosts") {
		t.Errorf("log line %q names hosts, which did not change", b.String())
	}
}
