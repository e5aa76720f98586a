package policy

import (
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name     string
		kind     string
		value    string
		wantFrag string // empty: valid
	}{
		{name: "simple", kind: "login", value: "deploy"},
		{name: "dots dashes underscores", kind: "host", value: "web-1.prod_eu"},
		{name: "unicode letters", kind: "user", value: "jörg"},
		{name: "64 bytes", kind: "role", value: strings.Repeat("a", 64)},
		{name: "empty", kind: "login", value: "", wantFrag: "login name is empty"},
		{name: "65 bytes", kind: "group", value: strings.Repeat("a", 65), wantFrag: "longer than 64 bytes"},
		{name: "comma", kind: "login", value: "root,admin", wantFrag: `login name "root,admin" contains ','`},
		{name: "star", kind: "host", value: "*", wantFrag: `contains '*'`},
		{name: "question mark", kind: "host", value: "db?", wantFrag: `contains '?'`},
		{name: "percent", kind: "login", value: "%u", wantFrag: `contains '%'`},
		{name: "at", kind: "login", value: "root@db1", wantFrag: `contains '@'`},
		{name: "colon", kind: "host", value: "db1:22", wantFrag: `contains ':'`},
		{name: "slash", kind: "host", value: "a/b", wantFrag: `contains '/'`},
		{name: "backslash", kind: "host", value: `a\b`, wantFrag: `contains '\\'`},
		{name: "bang", kind: "group", value: "!dev", wantFrag: `contains '!'`},
		{name: "space", kind: "user", value: "a b", wantFrag: "whitespace"},
		{name: "no-break space", kind: "user", value: "a\u00a0b", wantFrag: "whitespace"},
		{name: "tab", kind: "user", value: "a\tb", wantFrag: "whitespace"},
		{name: "newline", kind: "user", value: "a\n", wantFrag: "whitespace"},
		{name: "NUL", kind: "login", value: "root\x00", wantFrag: "non-printable"},
		{name: "escape", kind: "login", value: "\x1b[31m", wantFrag: "non-printable"},
		{name: "DEL", kind: "login", value: "a\x7f", wantFrag: "non-printable"},
		{name: "zero-width space", kind: "login", value: "ro\u200bot", wantFrag: "non-printable"},
		{name: "invalid utf-8", kind: "login", value: "ro\xffot", wantFrag: "not valid UTF-8"},
		{name: "leading dash", kind: "login", value: "-oProxyCommand", wantFrag: "starts with '-'"},
		{name: "dot", kind: "host", value: ".", wantFrag: "path element"},
		{name: "dot dot", kind: "host", value: "..", wantFrag: "path element"},
		{name: "unknown kind", kind: "planet", value: "earth", wantFrag: `unknown name kind "planet"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidName(tt.kind, tt.value)
			if tt.wantFrag == "" {
				if err != nil {
					t.Fatalf("ValidName(%q, %q) = %v, want nil", tt.kind, tt.value, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantFrag) {
				t.Fatalf("ValidName(%q, %q) = %v, want error containing %q", tt.kind, tt.value, err, tt.wantFrag)
			}
		})
	}
}

func TestCanApprove(t *testing.T) {
	p := mustParse(t, "eval.yaml", evalPolicy)
	tests := []struct {
		name       string
		approver   string
		requester  string
		role       string
		want       bool
		wantReason Reason
	}{
		{name: "approver group member", approver: "bob", requester: "alice", role: "prod-root", want: true, wantReason: ReasonAllowed},
		{name: "approver only in approvers group", approver: "frank", requester: "carol", role: "emergency", want: true, wantReason: ReasonAllowed},
		{name: "self approval", approver: "bob", requester: "bob", role: "prod-root", wantReason: ReasonSelfApproval},
		{name: "not in approver group", approver: "carol", requester: "alice", role: "prod-root", wantReason: ReasonNotApprover},
		{name: "role without approval", approver: "bob", requester: "alice", role: "staging", wantReason: ReasonNotApprover},
		{name: "unknown approver", approver: "mallory", requester: "alice", role: "prod-root", wantReason: ReasonUnknownUser},
		{name: "unknown role", approver: "bob", requester: "alice", role: "nope", wantReason: ReasonUnknownRole},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, reason := p.CanApprove(tt.approver, tt.requester, tt.role)
			if got != tt.want || reason != tt.wantReason {
				t.Errorf("CanApprove(%q, %q, %q) = %v, %s; want %v, %s", tt.approver, tt.requester, tt.role, got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestLookups(t *testing.T) {
	p := mustParse(t, "eval.yaml", evalPolicy)
	tests := []struct {
		name   string
		lookup func(string) bool
		key    string
		want   bool
	}{
		{name: "role found", lookup: func(s string) bool { _, ok := p.Role(s); return ok }, key: "prod-root", want: true},
		{name: "role missing", lookup: func(s string) bool { _, ok := p.Role(s); return ok }, key: "prod", want: false},
		{name: "host found", lookup: func(s string) bool { h, ok := p.Host(s); return ok && h.Name == s }, key: "db1", want: true},
		{name: "host missing", lookup: func(s string) bool { _, ok := p.Host(s); return ok }, key: "db2", want: false},
		{name: "user found", lookup: func(s string) bool { u, ok := p.User(s); return ok && u.Name == s }, key: "alice", want: true},
		{name: "user missing", lookup: func(s string) bool { _, ok := p.User(s); return ok }, key: "Alice", want: false},
		{name: "admin", lookup: p.IsAdmin, key: "eve", want: true},
		{name: "not admin", lookup: p.IsAdmin, key: "alice", want: false},
		{name: "unknown user is no admin", lookup: p.IsAdmin, key: "admins", want: false},
		{name: "not auditor", lookup: p.IsAuditor, key: "alice", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.lookup(tt.key); got != tt.want {
				t.Errorf("lookup(%q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
}

func TestUserByKey(t *testing.T) {
	aliceKey, aliceText := testKey(t, "alice")
	bobKey, bobText := testKey(t, "bob")
	strangerKey, _ := testKey(t, "stranger")
	p := mustParse(t, "keys.yaml", "users:\n  alice: {groups: [dev], keys: ["+quote(aliceText)+"]}\n  bob: {keys: ["+quote(bobText)+"]}\n")
	// An enrolled user holding alice's key makes the key ambiguous.
	shared := p.WithUsers([]User{{Name: "mallory", Keys: []ssh.PublicKey{aliceKey}}})
	tests := []struct {
		name     string
		policy   *Policy
		key      ssh.PublicKey
		wantUser string
	}{
		{name: "alice", policy: p, key: aliceKey, wantUser: "alice"},
		{name: "bob", policy: p, key: bobKey, wantUser: "bob"},
		{name: "unknown key", policy: p, key: strangerKey},
		{name: "nil key", policy: p, key: nil},
		{name: "ambiguous key", policy: shared, key: aliceKey},
		{name: "unambiguous key beside an ambiguous one", policy: shared, key: bobKey, wantUser: "bob"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, ok := tt.policy.UserByKey(tt.key)
			if ok != (tt.wantUser != "") || u.Name != tt.wantUser {
				t.Errorf("UserByKey = %q, %v; want %q", u.Name, ok, tt.wantUser)
			}
		})
	}
}

func quote(s string) string { return `"` + s + `"` }

func TestWithUsers(t *testing.T) {
	p := mustParse(t, "eval.yaml", evalPolicy)
	before := len(p.Users)
	newKey, _ := testKey(t, "zoe")
	aliceLaptop, _ := testKey(t, "alice-laptop")
	fileKeys := len(p.Users["alice"].Keys)
	extra := []User{
		{Name: "zoe", Groups: []string{"dev"}, Keys: []ssh.PublicKey{newKey}},
		{Name: "alice", Groups: []string{"approvers"}, Keys: []ssh.PublicKey{aliceLaptop}}, // the file wins on groups; keys add up
		{Name: "bad name", Groups: []string{"approvers"}},                                  // invalid: left out
	}
	q := p.WithUsers(extra)
	extra[0].Groups[0] = "admins" // the caller's slices must not leak in

	tests := []struct {
		name string
		got  any
		want any
	}{
		{name: "original user count", got: len(p.Users), want: before},
		{name: "original lacks zoe", got: func() bool { _, ok := p.User("zoe"); return ok }(), want: false},
		{name: "merged user count", got: len(q.Users), want: before + 1},
		{name: "zoe groups", got: strings.Join(q.Users["zoe"].Groups, ","), want: "dev"},
		{name: "zoe found by key", got: func() string { u, _ := q.UserByKey(newKey); return u.Name }(), want: "zoe"},
		{name: "alice keeps file groups", got: strings.Join(q.Users["alice"].Groups, ","), want: "dev"},
		{name: "alice gains the enrolled key", got: len(q.Users["alice"].Keys), want: fileKeys + 1},
		{name: "alice found by enrolled key", got: func() string { u, _ := q.UserByKey(aliceLaptop); return u.Name }(), want: "alice"},
		{name: "original alice keys untouched", got: len(p.Users["alice"].Keys), want: fileKeys},
		{name: "alice still cannot approve", got: func() bool { ok, _ := q.CanApprove("alice", "carol", "prod-root"); return ok }(), want: false},
		{name: "invalid name left out", got: func() bool { _, ok := q.User("bad name"); return ok }(), want: false},
		{name: "roles shared", got: len(q.Roles), want: len(p.Roles)},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %v, want %v", tt.name, tt.got, tt.want)
		}
	}
	if slices.Contains(q.Users["zoe"].Groups, "admins") {
		t.Error("WithUsers kept the caller's Groups slice")
	}
}
