package policy

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/account")

// ephemeralBase is base with an ephemeral role instead of logins.
const ephemeralBase = `users:
  alice: {groups: [dev]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: r1
    groups: [dev]
    hosts: {labels: {env: prod}}
    account: ephemeral
`

func TestParseAccountErrors(t *testing.T) {
	withLogin := func(l string) string { return strings.Replace(base, "logins: [deploy]", "logins: ["+l+"]", 1) }
	tests := []struct {
		name     string
		text     string
		wantLine int
		wantFrag string
	}{
		{"provisioning login", withLogin("jitssh-provision"), 9, `logins: login "jitssh-provision" is reserved`},
		{"ephemeral-form login", withLogin("jit-alice-abcd"), 9, `logins starting with "jit-" are made by jitd`},
		{"logins with ephemeral", ephemeralBase + "    logins: [deploy]\n", 10, "logins: not allowed with account: ephemeral"},
		{"unknown kind", strings.Replace(ephemeralBase, "ephemeral", "shared", 1), 9, `account: "shared" is not a known kind`},
		{"sudo without account", base + "    sudo: all\n", 10, "sudo: only for account: ephemeral"},
		{"shell without account", base + "    shell: /bin/sh\n", 10, "shell: only for account: ephemeral"},
		{"groups without account", base + "    account_groups: [adm]\n", 10, "account_groups: only for account: ephemeral"},
		{"relative shell", ephemeralBase + "    shell: bash\n", 10, `shell: "bash" is not an absolute path`},
		{"shell with space", ephemeralBase + "    shell: \"/bin/ba sh\"\n", 10, "contains whitespace"},
		{"sudo word", ephemeralBase + "    sudo: everything\n", 10, `want all or a list of absolute command lines, got "everything"`},
		{"sudo mapping", ephemeralBase + "    sudo: {all: true}\n", 10, "got a mapping"},
		{"sudo empty list", ephemeralBase + "    sudo: []\n", 10, "empty list"},
		{"sudo relative", ephemeralBase + "    sudo: [systemctl restart nginx]\n", 10, "must start with an absolute path"},
		{"sudo comma", ephemeralBase + "    sudo: [\"/bin/true, /bin/sh\"]\n", 10, "sudoers would read specially"},
		{"sudo wildcard", ephemeralBase + "    sudo: [\"/usr/bin/systemctl restart *\"]\n", 10, "sudoers would read specially"},
		{"sudo ALL inside", ephemeralBase + "    sudo: [/usr/bin/env ALL]\n", 10, "write sudo: all"},
		{"sudo double space", ephemeralBase + "    sudo: [\"/bin/echo  x\"]\n", 10, "single-spaced"},
		{"sudo twice", ephemeralBase + "    sudo: [/bin/true, /bin/true]\n", 10, "listed twice"},
		{"sudo nested list", ephemeralBase + "    sudo: [[/bin/true]]\n", 10, "want a command line, got a list"},
		{"group not posix", ephemeralBase + "    account_groups: [Admins]\n", 10, "not a portable POSIX group name"},
		{"group twice", ephemeralBase + "    account_groups: [adm, adm]\n", 10, "listed twice"},
		{"managed group", ephemeralBase + "    account_groups: [jitssh-ephemeral]\n", 10, "jitssh adds every ephemeral account to itself"},
		{"no logins no account", strings.Replace(base, "    logins: [deploy]\n", "", 1), 6, "or account: ephemeral"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("policy.yaml", []byte(tt.text))
			if err == nil {
				t.Fatalf("Parse accepted:\n%s", tt.text)
			}
			want := fmt.Sprintf("policy.yaml:%d: ", tt.wantLine)
			if !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.wantFrag) {
				t.Fatalf("error %q, want prefix %q and %q", err, want, tt.wantFrag)
			}
		})
	}
}

// TestParseAccountGolden parses each testdata/account/*.yaml and compares
// the roles' account rules with the .golden file next to it (-update
// rewrites them).
func TestParseAccountGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/account/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden inputs: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			p, err := Parse(filepath.Base(f), data)
			if err != nil {
				t.Fatal(err)
			}
			var b strings.Builder
			for _, r := range p.Roles {
				fmt.Fprintf(&b, "role %s logins=%q", r.Name, r.Logins)
				if a := r.Account; a != nil {
					fmt.Fprintf(&b, " account: groups=%q sudo_all=%v sudo=%q shell=%q rules=%q", a.Groups, a.SudoAll, a.Sudo, a.Shell, a.SudoRules())
				}
				b.WriteString("\n")
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != string(want) {
				t.Fatalf("got\n%s\nwant\n%s", b.String(), want)
			}
		})
	}
}

func TestEphemeralLogin(t *testing.T) {
	tests := []struct {
		user, seed string
		attempt    int
		wantPrefix string
	}{
		{"alice", "req_1", 0, "jit-alice-"},
		{"Alice.Smith", "req_1", 0, "jit-alicesmith-"},
		{"a-very-long-user-name-that-goes-on", "req_1", 0, "jit-a-very-long-user-name-t-"},
		{"élodie", "req_1", 0, "jit-lodie-"},
		{"日本", "req_1", 0, "jit-u-"},
		{"bob_2", "req_2", 3, "jit-bob_2-"},
	}
	seen := map[string]bool{}
	for _, tt := range tests {
		got := EphemeralLogin(tt.user, tt.seed, tt.attempt)
		if err := ValidEphemeralLogin(got); err != nil {
			t.Errorf("EphemeralLogin(%q) = %q: %v", tt.user, got, err)
		}
		if !strings.HasPrefix(got, tt.wantPrefix) || len(got) != len(tt.wantPrefix)+4 || len(got) > MaxEphemeralLogin {
			t.Errorf("EphemeralLogin(%q, %q, %d) = %q, want %q and 4 characters, at most 32", tt.user, tt.seed, tt.attempt, got, tt.wantPrefix)
		}
		if ValidName("login", got) != nil {
			t.Errorf("%q fails ValidName", got)
		}
		seen[got] = true
	}
	// The same seed gives the same name; another attempt or seed another
	// (a collision on the host is resolved by asking again).
	if a, b := EphemeralLogin("alice", "req_1", 0), EphemeralLogin("alice", "req_1", 0); a != b {
		t.Errorf("EphemeralLogin is not deterministic: %s, %s", a, b)
	}
	names := map[string]bool{}
	for i := range 50 {
		names[EphemeralLogin("alice", "req_1", i)] = true
	}
	if len(names) < 49 {
		t.Errorf("50 attempts gave only %d names", len(names))
	}
}

func TestEvaluateEphemeral(t *testing.T) {
	p, err := Parse("p.yaml", []byte(ephemeralBase+"    account_groups: [adm]\n    sudo: [/usr/bin/id]\n"+`  - name: fixed
    groups: [dev]
    hosts: {names: [db1]}
    logins: [deploy]
`))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	login := EphemeralLogin("alice", "req_x", 0)
	tests := []struct {
		name       string
		req        Request
		want       Outcome
		wantReason Reason
	}{
		{"ephemeral", Request{User: "alice", Host: "db1", Login: login, Ephemeral: true, Justification: "fix"}, Allow, ReasonAllowed},
		{"fixed login", Request{User: "alice", Host: "db1", Login: "deploy", Justification: "fix"}, Allow, ReasonAllowed},
		{"ephemeral name as fixed", Request{User: "alice", Host: "db1", Login: login, Justification: "fix"}, Deny, ReasonInvalidLogin},
		{"provisioning login", Request{User: "alice", Host: "db1", Login: ProvisionLogin, Justification: "fix"}, Deny, ReasonInvalidLogin},
		{"ephemeral with a bad name", Request{User: "alice", Host: "db1", Login: "deploy", Ephemeral: true, Justification: "fix"}, Deny, ReasonInvalidLogin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := p.Evaluate(tt.req, now)
			if d.Outcome != tt.want || d.Reason != tt.wantReason {
				t.Fatalf("got %s %s (%s), want %s %s", d.Outcome, d.Reason, d.Message, tt.want, tt.wantReason)
			}
			if d.Outcome == Deny {
				return
			}
			if got := d.Principals; len(got) != 1 || got[0] != tt.req.Login+"@db1" {
				t.Fatalf("principals %q", got)
			}
			if (d.Account != nil) != tt.req.Ephemeral {
				t.Fatalf("account %+v for ephemeral=%v", d.Account, tt.req.Ephemeral)
			}
			if d.Account != nil && (d.Role != "r1" || d.Account.Groups[0] != "adm" || d.Account.Sudo[0] != "/usr/bin/id") {
				t.Fatalf("decision %+v account %+v", d, d.Account)
			}
		})
	}
	// Only the fixed role: an ephemeral request is not allowed there.
	q, err := Parse("q.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if d := q.Evaluate(Request{User: "alice", Host: "db1", Login: login, Ephemeral: true, Justification: "fix"}, now); d.Reason != ReasonLoginNotAllowed || !strings.Contains(d.Message, "ephemeral account") {
		t.Fatalf("got %s: %s", d.Reason, d.Message)
	}
}
