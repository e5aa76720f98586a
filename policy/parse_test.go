package policy

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"math/big"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// testKey returns a deterministic ed25519 public key in authorized_keys form.
func testKey(t testing.TB, seed string) (ssh.PublicKey, string) {
	t.Helper()
	sum := sha256.Sum256([]byte(seed))
	pub, err := ssh.NewPublicKey(ed25519.NewKeyFromSeed(sum[:]).Public())
	if err != nil {
		t.Fatal(err)
	}
	return pub, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub)))
}

// base is a valid policy; error cases append or replace lines of it.
const base = `users:
  alice: {groups: [dev]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: r1
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [deploy]
`

func TestParseValid(t *testing.T) {
	_, aliceKey := testKey(t, "alice")
	_, hostKey := testKey(t, "db1")
	text := fmt.Sprintf(`users:
  alice: {groups: [dev], keys: [%q]}
  bob: {groups: [dev, dba-approvers]}
admins: {groups: [admins], may_request_access: true}
auditors: {groups: [secops]}
hosts:
  db1: {address: "10.0.0.5:22", labels: {env: prod, role: db}, host_key: %q}
  web-1: {address: "[::1]:2222"}
roles:
  - name: prod-db-deploy
    groups: [dev]
    hosts: {labels: {env: prod}, names: [db1, "web-*"]}
    logins: [deploy]
    ttl: 15m
    max_ttl: 30m
    justification: {min_length: 10, ticket: '^(INC|CHG)-[0-9]+'}
    extensions: [permit-port-forwarding, permit-pty]
    source_addresses: [10.0.0.0/8, "2001:db8::/32"]
    force_command: "/usr/bin/id -u"
    record_input: true
    approval: {approvers: [dba-approvers], count: 2, auto_approve: {ticket: '^CHG-[0-9]+', schedule: "Mon-Fri 08:00-18:00 Europe/Berlin"}}
    request_ttl: 45m
    redeem_ttl: 5m
    break_glass: true
    idle_timeout: 15m
  - name: defaults
    groups: [dev]
    hosts: {names: ["*"]}
    logins: [deploy]
`, aliceKey, hostKey)
	p := mustParse(t, "policy.yaml", text)
	r, ok := p.Role("prod-db-deploy")
	if !ok {
		t.Fatal("role prod-db-deploy missing")
	}
	checks := []struct {
		name string
		got  any
		want any
	}{
		{name: "ttl", got: r.TTL, want: 15 * time.Minute},
		{name: "max_ttl", got: r.MaxTTL, want: 30 * time.Minute},
		{name: "min_length", got: r.Justification.MinLength, want: 10},
		{name: "ticket", got: r.Justification.Ticket.String(), want: "^(INC|CHG)-[0-9]+"},
		{name: "extensions", got: fmt.Sprint(r.Extensions), want: "[permit-port-forwarding]"},
		{name: "source addresses", got: fmt.Sprint(r.SourceAddresses), want: "[10.0.0.0/8 2001:db8::/32]"},
		{name: "force_command", got: r.ForceCommand, want: "/usr/bin/id -u"},
		{name: "record_input", got: r.RecordInput, want: true},
		{name: "approvers", got: fmt.Sprint(r.Approval.Approvers), want: "[dba-approvers]"},
		{name: "count", got: r.Approval.Count, want: 2},
		{name: "auto ticket", got: r.Approval.AutoApprove.Ticket.String(), want: "^CHG-[0-9]+"},
		{name: "schedule", got: r.Approval.AutoApprove.Schedule.String(), want: "Mon-Fri 08:00-18:00 Europe/Berlin"},
		{name: "request_ttl", got: r.RequestTTL, want: 45 * time.Minute},
		{name: "redeem_ttl", got: r.RedeemTTL, want: 5 * time.Minute},
		{name: "break_glass", got: r.BreakGlass, want: true},
		{name: "idle_timeout", got: r.IdleTimeout, want: 15 * time.Minute},
		{name: "selector names", got: fmt.Sprint(r.Hosts.Names), want: "[db1 web-*]"},
		{name: "admins may request", got: p.Admins.MayRequestAccess, want: true},
		{name: "auditors", got: fmt.Sprint(p.Auditors), want: "[secops]"},
		{name: "alice keys", got: len(p.Users["alice"].Keys), want: 1},
		{name: "bob groups", got: fmt.Sprint(p.Users["bob"].Groups), want: "[dev dba-approvers]"},
		{name: "db1 pinned", got: p.Hosts["db1"].HostKey != nil, want: true},
		{name: "db1 labels", got: fmt.Sprint(p.Hosts["db1"].Labels), want: "map[env:prod role:db]"},
		{name: "web-1 address", got: p.Hosts["web-1"].Address, want: "[::1]:2222"},
		{name: "web-1 name", got: p.Hosts["web-1"].Name, want: "web-1"},
	}
	d, _ := p.Role("defaults")
	checks = append(checks, []struct {
		name string
		got  any
		want any
	}{
		{name: "default ttl", got: d.TTL, want: DefaultTTL},
		{name: "default max_ttl", got: d.MaxTTL, want: DefaultMaxTTL},
		{name: "default min_length", got: d.Justification.MinLength, want: 1},
		{name: "default request_ttl", got: d.RequestTTL, want: DefaultRequestTTL},
		{name: "default redeem_ttl", got: d.RedeemTTL, want: DefaultRedeemTTL},
		{name: "default approval", got: d.Approval == nil, want: true},
		{name: "default idle_timeout (none)", got: d.IdleTimeout, want: time.Duration(0)},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	_, aliceKey := testKey(t, "alice")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // deliberately weak, to be rejected
	if err != nil {
		t.Fatal(err)
	}
	weak, err := ssh.NewPublicKey(&rsaKey.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	weakText := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(weak)))
	// A modulus of 9000 bits without generating the key, which takes minutes.
	hugeN := new(big.Int).Lsh(big.NewInt(1), 8999)
	huge, err := ssh.NewPublicKey(&rsa.PublicKey{N: hugeN.Add(hugeN, big.NewInt(1)), E: 65537})
	if err != nil {
		t.Fatal(err)
	}
	hugeText := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(huge)))
	role := func(extra string) string { return base + extra }

	tests := []struct {
		name     string
		text     string
		wantLine int // 0: no line number expected
		wantFrag string
	}{
		{name: "empty document", text: "", wantFrag: "policy.yaml: empty policy"},
		{name: "only comments", text: "# nothing\n", wantFrag: "empty policy"},
		{name: "null document", text: "~\n", wantLine: 1, wantFrag: "empty policy"},
		{name: "empty mapping", text: "{}\n", wantLine: 1, wantFrag: "empty policy"},
		{name: "not a mapping", text: "- a\n", wantLine: 1, wantFrag: "policy: want a mapping"},
		{name: "syntax error", text: "users:\n\talice: {}\n", wantLine: 2, wantFrag: "found character that cannot start any token"},
		{name: "two documents", text: base + "---\nusers: {}\n", wantLine: 10, wantFrag: "more than one YAML document"},
		{name: "unknown top-level field", text: base + "version: 2\n", wantLine: 10, wantFrag: `unknown field "version"`},
		{name: "unknown role field", text: role("    foo: bar\n"), wantLine: 10, wantFrag: `role "r1": unknown field "foo"`},
		{name: "unknown user field", text: strings.Replace(base, "{groups: [dev]}", "{groups: [dev], email: a@b}", 1), wantLine: 2, wantFrag: `user "alice": unknown field "email"`},
		{name: "unknown host field", text: strings.Replace(base, "labels: {env: prod}}", "labels: {env: prod}, port: 22}", 1), wantLine: 4, wantFrag: `host "db1": unknown field "port"`},
		{name: "unknown approval field", text: role("    approval: {approvers: [x], quorum: 2}\n"), wantLine: 10, wantFrag: `role "r1": approval: unknown field "quorum"`},
		{name: "unknown auto_approve field", text: role("    approval: {approvers: [x], auto_approve: {when: now}}\n"), wantLine: 10, wantFrag: `auto_approve: unknown field "when"`},
		{name: "unknown justification field", text: role("    justification: {max_length: 3}\n"), wantLine: 10, wantFrag: `justification: unknown field "max_length"`},
		{name: "unknown selector field", text: strings.Replace(base, "hosts: {labels: {env: prod}}", "hosts: {tags: [a]}", 1), wantLine: 8, wantFrag: `role "r1": hosts: unknown field "tags"`},
		{name: "unknown admins field", text: base + "admins: {group: [a]}\n", wantLine: 10, wantFrag: `admins: unknown field "group"`},
		{name: "merge key", text: base + "defaults: &d {groups: [dev]}\n", wantLine: 10, wantFrag: `unknown field "defaults"`},
		{name: "alias", text: strings.Replace(base, "groups: [dev]}", "groups: &g [dev]}\n  bob: {groups: *g}", 1), wantLine: 3, wantFrag: "aliases are not allowed"},
		{name: "duplicate user", text: strings.Replace(base, "  alice: {groups: [dev]}\n", "  alice: {groups: [dev]}\n  alice: {groups: [ops]}\n", 1), wantLine: 3, wantFrag: `duplicate key "alice" (first at line 2)`},
		{name: "duplicate host", text: strings.Replace(base, "hosts:\n", "hosts:\n  db1: {address: \"127.0.0.1:22\"}\n", 1), wantLine: 5, wantFrag: `duplicate key "db1"`},
		{name: "duplicate role", text: role("  - name: r1\n    groups: [dev]\n    hosts: {names: [db1]}\n    logins: [x]\n"), wantLine: 10, wantFrag: `duplicate role "r1" (first at line 6)`},
		{name: "duplicate field", text: role("    logins: [root]\n"), wantLine: 10, wantFrag: `duplicate key "logins"`},
		{name: "role without groups", text: strings.Replace(base, "    groups: [dev]\n", "", 1), wantLine: 6, wantFrag: `role "r1": groups: at least one group is required`},
		{name: "role with empty groups", text: strings.Replace(base, "    groups: [dev]\n", "    groups: []\n", 1), wantLine: 7, wantFrag: "at least one group"},
		{name: "role without logins", text: strings.Replace(base, "    logins: [deploy]\n", "", 1), wantLine: 6, wantFrag: "logins: at least one login"},
		{name: "role without hosts", text: strings.Replace(base, "    hosts: {labels: {env: prod}}\n", "", 1), wantLine: 6, wantFrag: "hosts: names or labels are required"},
		{name: "role without name", text: strings.Replace(base, "  - name: r1\n    groups", "  - groups", 1), wantLine: 6, wantFrag: "roles[0]: name: role name is empty"},
		{name: "bad role name", text: strings.Replace(base, "name: r1", "name: 'r 1'", 1), wantLine: 6, wantFrag: `roles[0]: name: role name "r 1" contains whitespace`},
		{name: "bad user name", text: strings.Replace(base, "alice:", "al@ice:", 1), wantLine: 2, wantFrag: `users: user name "al@ice" contains '@'`},
		{name: "null user name", text: strings.Replace(base, "alice:", "~:", 1), wantLine: 2, wantFrag: "users: empty key"},
		{name: "bad host name", text: strings.Replace(base, "db1:", "db1:22:", 1), wantLine: 4, wantFrag: `host name "db1:22"`},
		{name: "bad group name", text: strings.Replace(base, "{groups: [dev]}", "{groups: ['*']}", 1), wantLine: 2, wantFrag: `user "alice": groups: group name "*"`},
		{name: "bad login", text: strings.Replace(base, "logins: [deploy]", "logins: [deploy, 'ro,ot']", 1), wantLine: 9, wantFrag: `logins: login name "ro,ot" contains ','`},
		{name: "duplicate login", text: strings.Replace(base, "logins: [deploy]", "logins: [deploy, deploy]", 1), wantLine: 9, wantFrag: `"deploy" listed twice`},
		{name: "groups not a list", text: strings.Replace(base, "{groups: [dev]}", "{groups: dev}", 1), wantLine: 2, wantFrag: `user "alice": groups: want a list, got "dev"`},
		{name: "unknown extension", text: role("    extensions: [permit-everything]\n"), wantLine: 10, wantFrag: `unknown extension "permit-everything"`},
		{name: "duplicate extension", text: role("    extensions: [permit-user-rc, permit-user-rc]\n"), wantLine: 10, wantFrag: "listed twice"},
		{name: "bad duration", text: role("    ttl: 10x\n"), wantLine: 10, wantFrag: `role "r1": ttl: bad duration "10x"`},
		{name: "duration without unit", text: role("    ttl: 600\n"), wantLine: 10, wantFrag: `bad duration "600"`},
		{name: "negative duration", text: role("    ttl: -5m\n"), wantLine: 10, wantFrag: "must be positive"},
		{name: "fractional seconds", text: role("    ttl: 1500ms\n"), wantLine: 10, wantFrag: "whole seconds"},
		{name: "ttl above max_ttl", text: role("    ttl: 45m\n    max_ttl: 30m\n"), wantLine: 10, wantFrag: "ttl 45m exceeds max_ttl 30m"},
		{name: "ttl above default max_ttl", text: role("    ttl: 2h\n"), wantLine: 10, wantFrag: "ttl 2h exceeds max_ttl 1h"},
		{name: "max_ttl above 24h", text: role("    max_ttl: 25h\n"), wantLine: 10, wantFrag: `max_ttl: duration "25h" exceeds the limit of 24h`},
		{name: "request_ttl above limit", text: role("    request_ttl: 200h\n"), wantLine: 10, wantFrag: "request_ttl"},
		{name: "bad idle_timeout", text: role("    idle_timeout: forever\n"), wantLine: 10, wantFrag: `idle_timeout: bad duration "forever"`},
		{name: "idle_timeout zero", text: role("    idle_timeout: 0s\n"), wantLine: 10, wantFrag: `idle_timeout: duration "0s" must be positive`},
		{name: "idle_timeout above 24h", text: role("    idle_timeout: 25h\n"), wantLine: 10, wantFrag: `idle_timeout: duration "25h" exceeds the limit of 24h`},
		{name: "idle_timeout fractional", text: role("    idle_timeout: 90.5s\n"), wantLine: 10, wantFrag: `idle_timeout: duration "90.5s" must be whole seconds`},
		{name: "bad redeem_ttl", text: role("    redeem_ttl: soon\n"), wantLine: 10, wantFrag: `redeem_ttl: bad duration "soon"`},
		{name: "bad regexp", text: role("    justification: {ticket: '^(INC'}\n"), wantLine: 10, wantFrag: `justification: ticket: bad regexp "^(INC"`},
		{name: "empty ticket", text: role("    justification: {ticket: ''}\n"), wantLine: 10, wantFrag: "empty pattern"},
		{name: "min_length zero", text: role("    justification: {min_length: 0}\n"), wantLine: 10, wantFrag: "min_length 0 must be from 1 to 1000"},
		{name: "min_length too big", text: role("    justification: {min_length: 1001}\n"), wantLine: 10, wantFrag: "min_length 1001"},
		{name: "min_length not a number", text: role("    justification: {min_length: ten}\n"), wantLine: 10, wantFrag: "cannot unmarshal"},
		{name: "bad CIDR", text: role("    source_addresses: [10.0.0.0/8, 10.0.0.300/32]\n"), wantLine: 10, wantFrag: `source_addresses: bad CIDR "10.0.0.300/32"`},
		{name: "bare address", text: role("    source_addresses: [10.0.0.1]\n"), wantLine: 10, wantFrag: `bad CIDR "10.0.0.1"`},
		{name: "CIDR with host bits", text: role("    source_addresses: [10.0.0.1/8]\n"), wantLine: 10, wantFrag: `did you mean "10.0.0.0/8"`},
		{name: "force_command with newline", text: role("    force_command: \"id\\nrm -rf /\"\n"), wantLine: 10, wantFrag: "force_command: control characters"},
		{name: "empty approval", text: role("    approval:\n"), wantLine: 10, wantFrag: "approval: empty"},
		{name: "approval without approvers", text: role("    approval: {count: 1}\n"), wantLine: 10, wantFrag: "approvers: at least one group"},
		{name: "approval count zero", text: role("    approval: {approvers: [x], count: 0}\n"), wantLine: 10, wantFrag: "count 0 must be at least 1"},
		{name: "approval count negative", text: role("    approval:\n      approvers: [x]\n      count: -2\n"), wantLine: 12, wantFrag: "count -2"},
		{name: "auto_approve without condition", text: role("    approval: {approvers: [x], auto_approve: {}}\n"), wantLine: 10, wantFrag: "auto_approve: ticket or schedule is required"},
		{name: "bad schedule day", text: role("    approval: {approvers: [x], auto_approve: {schedule: \"Mon-Fry 08:00-18:00 UTC\"}}\n"), wantLine: 10, wantFrag: `day "Fry"`},
		{name: "bad schedule zone", text: role("    approval: {approvers: [x], auto_approve: {schedule: \"Mon-Fri 08:00-18:00 Mars/Olympus\"}}\n"), wantLine: 10, wantFrag: `time zone "Mars/Olympus"`},
		{name: "bad schedule time", text: role("    approval: {approvers: [x], auto_approve: {schedule: \"Mon-Fri 8:00-18:00 UTC\"}}\n"), wantLine: 10, wantFrag: `time "8:00"`},
		{name: "bad auto ticket", text: role("    approval: {approvers: [x], auto_approve: {ticket: '['}}\n"), wantLine: 10, wantFrag: "auto_approve: ticket: bad regexp"},
		{name: "bad key", text: strings.Replace(base, "{groups: [dev]}", "{groups: [dev], keys: [\"ssh-ed25519 AAAAnotbase64\"]}", 1), wantLine: 2, wantFrag: `user "alice": keys[0]: public key: illegal base64`},
		{name: "key with options", text: strings.Replace(base, "{groups: [dev]}", fmt.Sprintf("{groups: [dev], keys: [%q]}", "no-pty "+aliceKey), 1), wantLine: 2, wantFrag: "options are not allowed"},
		{name: "two keys in one entry", text: strings.Replace(base, "{groups: [dev]}", fmt.Sprintf("{groups: [dev], keys: [%q]}", aliceKey+"\n"+aliceKey), 1), wantLine: 2, wantFrag: "public key: more than one line"},
		{name: "weak RSA key", text: strings.Replace(base, "{groups: [dev]}", fmt.Sprintf("{groups: [dev], keys: [%q]}", weakText), 1), wantLine: 2, wantFrag: "rsa key of 1024 bits; want 2048 to 8192"},
		{name: "huge RSA key", text: strings.Replace(base, "{groups: [dev]}", fmt.Sprintf("{groups: [dev], keys: [%q]}", hugeText), 1), wantLine: 2, wantFrag: "rsa key of 9000 bits; want 2048 to 8192"},
		{name: "key shared by two users", text: strings.Replace(base, "  alice: {groups: [dev]}\n", fmt.Sprintf("  alice: {groups: [dev], keys: [%q]}\n  bob:\n    keys:\n      - %q\n", aliceKey, aliceKey), 1), wantLine: 5, wantFrag: `user "bob": keys[0]: key already belongs to user "alice"`},
		{name: "bad host key", text: strings.Replace(base, "labels: {env: prod}}", "labels: {env: prod}, host_key: \"ssh-rsa nope\"}", 1), wantLine: 4, wantFrag: `host "db1": host_key: public key: key data too short`},
		{name: "missing address", text: strings.Replace(base, `address: "127.0.0.1:22", `, "", 1), wantLine: 4, wantFrag: `host "db1": address: required`},
		{name: "address without port", text: strings.Replace(base, "127.0.0.1:22", "127.0.0.1", 1), wantLine: 4, wantFrag: `address: "127.0.0.1"`},
		{name: "address port zero", text: strings.Replace(base, "127.0.0.1:22", "127.0.0.1:0", 1), wantLine: 4, wantFrag: "port must be a number"},
		{name: "label value not a string", text: strings.Replace(base, "labels: {env: prod}}", "labels: {env: [prod]}}", 1), wantLine: 4, wantFrag: `host "db1": labels: env: want a single value, got a list`},
		{name: "bad name pattern", text: strings.Replace(base, "hosts: {labels: {env: prod}}", "hosts: {names: ['db[']}", 1), wantLine: 8, wantFrag: `hosts: names: bad pattern "db["`},
		{name: "name pattern with comma", text: strings.Replace(base, "hosts: {labels: {env: prod}}", "hosts: {names: ['db1,db2']}", 1), wantLine: 8, wantFrag: `bad pattern "db1,db2"`},
		{name: "roles not a list", text: "roles: {name: x}\n", wantLine: 1, wantFrag: "roles: want a list"},
		{name: "role not a mapping", text: "roles: [x]\n", wantLine: 1, wantFrag: "roles[0]: definition: want a mapping"},
		{name: "users not a mapping", text: "users: [alice]\n", wantLine: 1, wantFrag: "users: want a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse("policy.yaml", []byte(tt.text))
			if err == nil {
				t.Fatalf("Parse succeeded (%d roles), want error containing %q", len(p.Roles), tt.wantFrag)
			}
			msg := err.Error()
			wantPrefix := "policy.yaml: "
			if tt.wantLine > 0 {
				wantPrefix = fmt.Sprintf("policy.yaml:%d: ", tt.wantLine)
			}
			if !strings.HasPrefix(msg, wantPrefix) || !strings.Contains(msg, tt.wantFrag) {
				t.Errorf("error = %q, want prefix %q and fragment %q", msg, wantPrefix, tt.wantFrag)
			}
		})
	}
}
