package policy

import (
	"slices"
	"strings"
	"testing"
)

const ssoBase = `
users:
  root: {groups: [admins]}
  alice: {groups: [dev]}
admins: {groups: [admins]}
roles:
  - {name: r, groups: [dev], hosts: {names: [h]}, logins: [deploy]}
`

func TestParseSSO(t *testing.T) {
	p, err := Parse("p.yaml", []byte(ssoBase+`sso:
  groups:
    eng-oncall: [dev]
    "/corp/sec audit": [secops, dev]
  key_login: admins-only
  key_login_allow: [alice]
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.SSO.MapGroups([]string{"/corp/sec audit", "eng-oncall", "other"}); !slices.Equal(got, []string{"dev", "secops"}) {
		t.Fatalf("mapped %q", got)
	}
	if got := p.SSO.MapGroups([]string{"other"}); len(got) != 0 {
		t.Fatalf("an unmapped group gave %q", got)
	}
	for user, want := range map[string]bool{"root": true, "alice": true, "bob": false} {
		if p.KeyLoginAllowed(user) != want {
			t.Errorf("key login of %s: want %v", user, want)
		}
	}
	none, err := Parse("p.yaml", []byte(ssoBase))
	if err != nil || !none.KeyLoginAllowed("bob") || none.SSO.KeyLogin != KeyLoginOn {
		t.Fatalf("without sso: key login must stay on: %v %+v", err, none.SSO)
	}
	off, err := Parse("p.yaml", []byte(ssoBase+"sso: {key_login: \"off\", key_login_allow: [root]}\n"))
	if err != nil || off.KeyLoginAllowed("alice") || !off.KeyLoginAllowed("root") {
		t.Fatalf("key_login off: %v %+v", err, off.SSO)
	}
}

func TestParseSSOErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"sso: {key_login: sometimes}", `p.yaml:8: sso: key_login: "sometimes" is not one of on, admins-only, off`},
		{"sso: {groups: {eng: [Bad Group]}}", `p.yaml:8: sso: groups: eng: group name "Bad Group" contains whitespace`},
		{"sso: {groups: {eng: []}}", `p.yaml:8: sso: groups: "eng" maps to no group`},
		{"sso: {groups: {eng: dev}}", `p.yaml:8: sso: groups: eng: want a list`},
		{"sso: {colour: blue}", `p.yaml:8: sso: unknown field "colour"`},
		{"sso: {key_login_allow: [alice, alice]}", `p.yaml:8: sso: key_login_allow: "alice" listed twice`},
	} {
		_, err := Parse("p.yaml", []byte(ssoBase+tc.yaml+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.yaml, err, tc.want)
		}
	}
}

func TestWithSSOUsers(t *testing.T) {
	p, err := Parse("p.yaml", []byte(ssoBase))
	if err != nil {
		t.Fatal(err)
	}
	q := p.WithSSOUsers([]User{{Name: "alice", Groups: []string{"admins"}}, {Name: "erin", Groups: []string{"dev"}}, {Name: "Bad Name", Groups: []string{"dev"}}})
	if u, _ := q.User("alice"); !slices.Equal(u.Groups, []string{"dev"}) {
		t.Fatalf("an SSO identity changed the file user alice: %q", u.Groups)
	}
	if u, ok := q.User("erin"); !ok || !slices.Equal(u.Groups, []string{"dev"}) {
		t.Fatalf("erin: %v %+v", ok, u)
	}
	if _, ok := q.User("Bad Name"); ok {
		t.Fatal("an invalid name was merged")
	}
	if _, ok := p.User("erin"); ok {
		t.Fatal("WithSSOUsers changed its receiver")
	}
	// alice is the file's; erin only an SSO identity.
	if !q.LocalUser("alice") || q.LocalUser("erin") || q.LocalUser("nobody") {
		t.Fatalf("LocalUser: alice %v erin %v nobody %v, want true false false", q.LocalUser("alice"), q.LocalUser("erin"), q.LocalUser("nobody"))
	}
}
