package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// issue2Policy lets dev engineers log in as the local user on db1 for up
// to 30 minutes with a change or incident ticket in the reason; auditors
// read the trail.
const issue2Policy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
auditors: {groups: [secops]}
hosts:
  db1: {address: "{{index .Addr "db1"}}", labels: {env: prod}}
  db2: {address: "{{index .Addr "db2"}}", labels: {env: prod}}
roles:
  - name: prod-db
    groups: [dev]
    hosts: {names: [db1, db2]}
    logins: [{{.Login}}]
    ttl: 10m
    max_ttl: 30m
    justification: {min_length: 10, ticket: '^(INC|CHG)-[0-9]+'}
`

// TestIssue2CertificateForOneHost is the acceptance test of issue 2: a
// justified request gives a minutes-long user certificate for exactly
// LOGIN@db1 that a real sshd for db1 accepts and one for db2 refuses, and
// the issuance is in a verifiable audit trail.
func TestIssue2CertificateForOneHost(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "sshd", "ssh", "ssh-keygen")
	login := sshdtest.LocalUser(t)
	alice, auditor := newEngineer(t, "alice"), newEngineer(t, "auditor")
	d := initDaemon(t)
	db1, db2 := d.targetSSHD(t, "db1"), d.targetSSHD(t, "db2")
	d.serve(t, renderPolicy(t, issue2Policy, login, []*engineer{alice, auditor}, map[string]*sshdtest.Server{"db1": db1, "db2": db2}))
	d.login(t, alice)
	d.login(t, auditor)

	const ttl = 5 * time.Minute
	asked := time.Now()
	out := mustRun(t, alice, "request", "db1", "--login", login, "--reason", "CHG-1 restart the replica", "--ttl", "5m", "--format", "json")
	g := parseGrant(t, out)

	// The certificate sits beside its fresh key, both private to the user.
	if want := g.KeyFile + "-cert.pub"; g.CertificateFile != want {
		t.Errorf("certificate file %s, want %s beside the key", g.CertificateFile, want)
	}
	if !strings.HasPrefix(g.CertificateFile, alice.Home+string(filepath.Separator)) {
		t.Errorf("certificate file %s is outside JIT_HOME %s", g.CertificateFile, alice.Home)
	}
	for _, f := range []string{g.CertificateFile, g.KeyFile} {
		if m := fileMode(t, f); m != 0o600 {
			t.Errorf("%s has mode %04o, want 0600", f, m)
		}
	}
	cert := readCert(t, g.CertificateFile)
	if got, want := g.Serial, cert.Serial; got != strconv.FormatUint(want, 10) {
		t.Errorf("printed serial %s, certificate serial %d", got, want)
	}

	// Real OpenSSH: db1 accepts the certificate, db2 refuses it.
	if out, err := sshTrue(t, db1, g.KeyFile); err != nil {
		t.Errorf("sshd for db1 refused the db1 certificate: %v\n%s\nsshd log:\n%s", err, out, db1.Log())
	}
	if out, err := sshTrue(t, db2, g.KeyFile); err == nil {
		t.Errorf("sshd for db2 accepted a certificate for %s@db1:\n%s", login, out)
	}

	// ssh-keygen -L shows what was promised.
	checkKeygenList(t, g.CertificateFile, keygenWant{
		keyID:     "jit:" + g.Request.ID + ":alice",
		principal: login + "@db1",
		ttl:       ttl,
		asked:     asked,
	})

	// jit status lists the live grant.
	status := mustRun(t, alice, "status")
	if !strings.Contains(status, login+"@db1") || !strings.Contains(status, g.Serial) {
		t.Errorf("jit status does not list %s@db1 serial %s:\n%s", login, g.Serial, status)
	}

	// The audit trail, as an auditor sees it: NDJSON with stable event and
	// code fields, holding the request and the issuance of this serial.
	evs := auditList(t, auditor)
	for _, want := range []struct{ event, code string }{
		{event: "request.created", code: "allowed"},
		{event: "cert.issued", code: "allowed"},
	} {
		ev, ok := findEvent(evs, want.event, func(ev auditEvent) bool { return ev.Serial == g.Serial })
		if !ok {
			t.Errorf("no %s event for serial %s in jit audit list", want.event, g.Serial)
			continue
		}
		if code(ev) != want.code || ev.User != "alice" || ev.Host != "db1" || ev.Login != login || ev.RequestID != g.Request.ID {
			t.Errorf("%s event = %+v, want code %s for alice, %s@db1, request %s", want.event, ev, want.code, login, g.Request.ID)
		}
	}
	if ev, ok := findEvent(evs, "cert.issued", func(ev auditEvent) bool { return ev.Serial == g.Serial }); ok {
		if ev.Data["principals"] != login+"@db1" || ev.Data["key_id"] != cert.KeyId {
			t.Errorf("cert.issued data %v, want principals %s@db1 and key id %s", ev.Data, login, cert.KeyId)
		}
	}

	// Only auditors read the trail.
	if _, stderr, code := run(t, alice, "audit", "list"); code != 3 || !strings.Contains(stderr, "not_auditor") {
		t.Errorf("alice's jit audit list: exit %d, stderr %q; want exit 3 naming not_auditor", code, stderr)
	}

	t.Run("existing key with --key", func(t *testing.T) {
		own := newEngineer(t, "alice-hw") // a second key pair of alice's, as a FIDO key would be
		pub := pubFile(t, own)
		if _, stderr, code := run(t, alice, "request", "db1", "--login", login, "--reason", "CHG-2 with my own key", "--key", own.Key); code != 2 || !strings.Contains(stderr, ".pub") {
			t.Errorf("--key naming the private key: exit %d, stderr %q; want 2 asking for the .pub file", code, stderr)
		}
		g := parseGrant(t, mustRun(t, alice, "request", "db1", "--login", login, "--reason", "CHG-2 with my own key", "--key", pub, "--format", "json"))
		cert := readCert(t, g.CertificateFile)
		if got, want := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert.Key))), strings.Join(strings.Fields(own.AuthorizedKey)[:2], " "); got != want {
			t.Errorf("certified key %s, want the --key %s", got, want)
		}
		if out, err := sshTrue(t, db1, g.KeyFile); err != nil {
			t.Errorf("sshd for db1 refused the --key certificate through %s: %v\n%s", g.KeyFile, err, out)
		}
		if exists(own.Key + "-cert.pub") {
			t.Error("jit wrote into the directory of the user's own key")
		}
	})

	if out := mustRun(t, auditor, "audit", "verify"); !strings.HasPrefix(out, "ok:") {
		t.Errorf("jit audit verify: %q, want ok", out)
	}
}

// keygenWant is what `ssh-keygen -L` must show for a grant.
type keygenWant struct {
	keyID, principal string
	ttl              time.Duration
	asked            time.Time // just before the request was sent
}

var keygenValid = regexp.MustCompile(`(?m)^\s*Valid: from (\S+) to (\S+)$`)

// checkKeygenList runs ssh-keygen -L on a certificate and checks its type,
// key id, principals, validity and extensions as the stock tool reads them.
func checkKeygenList(t *testing.T, certFile string, want keygenWant) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshdtest.Path("ssh-keygen"), "-L", "-f", certFile)
	cmd.Env = []string{"TZ=UTC"}
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("ssh-keygen -L -f %s: %v", certFile, err)
	}
	out := string(b)
	sections := keygenSections(out)
	if typ := sections["Type"]; !strings.HasSuffix(typ[0], " user certificate") {
		t.Errorf("Type: %q, want a user certificate", typ)
	}
	if id := sections["Key ID"]; len(id) != 1 || id[0] != `"`+want.keyID+`"` {
		t.Errorf("Key ID: %q, want %q", id, want.keyID)
	}
	if p := sections["Principals"]; !slices.Equal(p, []string{want.principal}) {
		t.Errorf("Principals: %q, want exactly %q", p, want.principal)
	}
	if ext := sections["Extensions"]; !slices.Equal(ext, []string{"permit-pty"}) {
		t.Errorf("Extensions: %q, want only permit-pty", ext)
	}
	if co := sections["Critical Options"]; !slices.Equal(co, []string{"(none)"}) {
		t.Errorf("Critical Options: %q, want (none)", co)
	}
	m := keygenValid.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no Valid line in ssh-keygen -L output:\n%s", out)
	}
	from, err1 := time.ParseInLocation("2006-01-02T15:04:05", m[1], time.UTC)
	to, err2 := time.ParseInLocation("2006-01-02T15:04:05", m[2], time.UTC)
	if err1 != nil || err2 != nil {
		t.Fatalf("parse Valid line %q: %v %v", m[0], err1, err2)
	}
	// valid_before = issue time + ttl; valid_after = issue time - 1m for clock
	// skew. Issue time is between asked and now (whole seconds).
	issuedLo, issuedHi := want.asked.Truncate(time.Second).Add(-time.Second), time.Now().Add(time.Second)
	if to.Before(issuedLo.Add(want.ttl)) || to.After(issuedHi.Add(want.ttl)) {
		t.Errorf("valid to %s, want %s after the request (between %s and %s)", to, want.ttl, issuedLo.Add(want.ttl), issuedHi.Add(want.ttl))
	}
	if got := to.Sub(from); got != want.ttl+time.Minute {
		t.Errorf("validity window %s, want the %s ttl plus 1m backdating", got, want.ttl)
	}
}

// keygenSections parses ssh-keygen -L output: fields "Name: value" are
// indented one level, list items (principals, options, extensions) two.
func keygenSections(out string) map[string][]string {
	sections := map[string][]string{}
	current := ""
	fieldIndent := -1
	for _, line := range strings.Split(out, "\n")[1:] {
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		if fieldIndent < 0 {
			fieldIndent = indent
		}
		if indent == fieldIndent {
			name, value, _ := strings.Cut(trimmed, ":")
			current = name
			sections[current] = []string{}
			if v := strings.TrimSpace(value); v != "" {
				sections[current] = append(sections[current], v)
			}
			continue
		}
		sections[current] = append(sections[current], trimmed)
	}
	return sections
}
