package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
)

// hostileTexts are what an attacker puts in every field of jitssh that
// comes from outside, to drive the terminal of whoever reads it later.
var hostileTexts = []struct{ name, text string }{
	{name: "CSI screen clear and home", text: "\x1b[2J\x1b[H"},
	{name: "CSI cursor up and erase line", text: "\x1b[3A\x1b[2K"},
	{name: "OSC 52 clipboard", text: "\x1b]52;c;cm0gLXJmIC8K\x07"},
	{name: "OSC 0 title", text: "\x1b]0;pwned\x1b\\"},
	{name: "C1 CSI", text: "\u009b2J"},
	{name: "bidi override and isolates", text: "\u202eexe.txt\u2066x\u2069"},
	{name: "lone ESC", text: "\x1b"},
	{name: "newline faking a row", text: "\nreq_0000000000000000000000000a  approved  mallory"},
	{name: "NUL", text: "\x00"},
	{name: "100 KB", text: strings.Repeat("A", 100<<10)},
}

// hostileBidi is what the daemon lets through in a justification or an
// approval or denial reason: it refuses controls there, but not format
// characters.
const hostileBidi = "\u202e\u2066evil\u2069 \u202d"

// maxOutputLine is the longest line jit's text output may have: its 4 KiB
// bound and the ellipsis note.
const maxOutputLine = 4096 + 64

// TestTextFromOutside (issue 9, text from outside) plants hostile strings
// in every field from outside that reaches a person: SSH user names sent to
// the bastion before authentication (session.rejected), commands run
// through the bastion (NUL and 100 KB ones over SSH), scp file names,
// justifications, approval and denial reasons, hosts of refused requests.
// Then it runs every text output of jit and checks its raw bytes: no ESC,
// C0 but newline, DEL, C1 or bidi control, valid UTF-8, bounded lines, and
// the planted value visible in escaped form. --format json gives back the
// exact strings, and jitd's text log is bounded too.
func TestTextFromOutside(t *testing.T) {
	t.Parallel()
	w := newSecWorld(t)
	p := plantHostile(t, w)

	outputs := []struct {
		name     string
		who      *engineer
		args     []string
		fails    bool     // the command is expected to exit non-zero
		evidence []string // what shows that the hostile value reached this output
	}{
		{name: "audit list", who: w.auditor, args: []string{"audit", "list"}, evidence: []string{`\x1b]0;pwned`, `\u009b2J`, `\u202e`, `\nreq_`, `\x00`, "…(+"}},
		{name: "sessions list", who: w.auditor, args: []string{"sessions", "list"}, evidence: []string{`\x1b[2J`, `\x00`, "…(+"}},
		{name: "sessions show of the hostile command", who: w.auditor, args: []string{"sessions", "show", p.sessionAll}, evidence: []string{`\x1b]52;c;`, `\u202e`, `justification "rotate the logs \u202e`}},
		{name: "sessions show of the 100 KB command", who: w.auditor, args: []string{"sessions", "show", p.sessionLong}, evidence: []string{"…(+"}},
		{name: "sessions show of the NUL command", who: w.auditor, args: []string{"sessions", "show", p.sessionNUL}, evidence: []string{`\x00`}},
		{name: "sessions search", who: w.auditor, args: []string{"sessions", "search", "needle"}, evidence: []string{"needle"}},
		{name: "sessions export text of the hostile command", who: w.auditor, args: []string{"sessions", "export", p.sessionAll, "--format", "text"}, evidence: []string{"needle"}},
		{name: "sessions export text of the scp upload", who: w.auditor, args: []string{"sessions", "export", p.sessionSCP, "--format", "text"}, evidence: []string{"scpneedle"}},
		{name: "requests", who: w.bob, args: []string{"requests"}, evidence: []string{`\u202e`}},
		{name: "requests pending", who: w.carol, args: []string{"requests", "--pending"}, evidence: []string{`\u202e`}},
		{name: "admin user list", who: w.admin, args: []string{"admin", "user", "list"}, evidence: []string{"mallory"}},
		{name: "status", who: w.alice, args: []string{"status"}, evidence: []string{"@db1"}},
		{name: "error quoting a hostile host", who: w.alice, args: []string{"request", "db1" + hostileTexts[3].text + hostileTexts[5].text, "--login", w.login, "--reason", "checking the host name"}, fails: true, evidence: []string{`\x1b]0;pwned`}},
		{name: "error quoting a 60 KB host", who: w.alice, args: []string{"request", strings.Repeat("h", 60<<10), "--login", w.login, "--reason", "checking the host name"}, fails: true, evidence: []string{"…(+"}},
		{name: "error quoting a hostile session id", who: w.auditor, args: []string{"sessions", "show", "ses" + hostileTexts[0].text + hostileTexts[4].text}, fails: true, evidence: []string{"jit: error:"}},
	}
	for _, o := range outputs {
		t.Run(o.name, func(t *testing.T) {
			r := start(t, o.who, o.args...).wait(t, commandTimeout)
			if (r.Code != 0) != o.fails {
				t.Fatalf("exit %d, want failure %t\n%.2000q", r.Code, o.fails, r.Stdout+r.Stderr)
			}
			checkNeutral(t, "stdout", r.Stdout)
			checkNeutral(t, "stderr", r.Stderr)
			for _, ev := range o.evidence {
				if !strings.Contains(r.Stdout+r.Stderr, ev) {
					t.Errorf("output lacks %q, so the hostile value did not reach it:\n%.3000q", ev, r.Stdout+r.Stderr)
				}
			}
		})
	}
	t.Run("decisions and enrolment", func(t *testing.T) {
		for _, out := range p.decisionOutputs {
			checkNeutral(t, "approve, deny or user add output", out)
		}
	})
	t.Run("json is faithful", func(t *testing.T) { checkFaithful(t, w, p) })
	t.Run("jitd text log", func(t *testing.T) {
		log := w.d.log.String()
		checkNeutral(t, "jitd log", log)
		if !strings.Contains(log, `msg="key refused"`) || !strings.Contains(log, "…(+") {
			t.Errorf("jitd's log lacks the refused hostile user names, bounded:\n%.3000q", log)
		}
	})
}

// planted is what plantHostile left in the daemon.
type planted struct {
	users                                           []string // SSH user names sent before authentication
	commandAll, commandLong, commandNUL             string
	sessionAll, sessionLong, sessionNUL, sessionSCP string
	justification, approveReason, denyReason        string
	decisionOutputs                                 []string
}

// plantHostile sends every hostile text where the outside can put it.
func plantHostile(t *testing.T, w *secWorld) planted {
	t.Helper()
	var p planted
	// SSH user names, with a key that is no certificate: refused and audited.
	stranger := newEngineer(t, "stranger")
	for _, h := range hostileTexts {
		user := "u" + h.text + "@db1"
		p.users = append(p.users, user)
		if err := bastionDial(t, w, user, loadSigner(t, stranger.Key, "")); err == nil {
			t.Fatalf("the bastion let %s in with a plain key", h.name)
		}
	}

	// Commands through the bastion, by jit ssh and, for NUL, which no
	// argv can hold, over SSH with alice's grant.
	var parts []string
	for _, h := range hostileTexts {
		if h.text != "\x00" && len(h.text) < 1000 {
			parts = append(parts, h.text)
		}
	}
	p.justification = "rotate the logs " + hostileBidi
	p.commandAll = "echo needle " + hostileBidi + "; true '" + strings.Join(parts, "") + "'"
	p.commandLong = "true " + strings.Repeat("B", 100<<10)
	p.commandNUL = "true 'nul\x00'"
	for _, cmd := range []string{p.commandAll, p.commandLong} {
		if r := start(t, w.alice, "ssh", w.login+"@db1", "--reason", p.justification, "--", cmd).wait(t, commandTimeout); r.Code != 0 {
			t.Fatalf("jit ssh %.60q: %v", cmd, r)
		}
	}
	g := parseGrant(t, mustRun(t, w.alice, "request", "db1", "--login", w.login, "--reason", p.justification, "--format", "json"))
	cert := loadSigner(t, g.KeyFile, g.CertificateFile)
	if err := bastionRun(t, w, w.login+"@db1", cert, p.commandNUL, ""); err == nil {
		t.Fatal("a command with a NUL ran cleanly; want the shell to refuse it")
	}
	dir := t.TempDir()
	name := "scpneedle" + hostileTexts[2].text + hostileBidi + hostileTexts[0].text
	if err := bastionRun(t, w, w.login+"@db1", cert, "scp -t "+dir, "C0644 5 "+name+"\nhello\x00"); err != nil {
		t.Fatalf("scp upload through the bastion: %v", err)
	}
	p.sessionAll = secSessionWith(t, w.auditor, "echo needle", sessionWait).ID
	p.sessionLong = secSessionWith(t, w.auditor, "BBBBBBBB", sessionWait).ID
	p.sessionNUL = secSessionWith(t, w.auditor, "nul\x00", sessionWait).ID
	p.sessionSCP = secSessionWith(t, w.auditor, "scp -t "+dir, sessionWait).ID

	// Reasons: bob asks for db2 twice; carol approves one and denies the
	// other, and leaves a third pending for jit requests --pending.
	p.approveReason, p.denyReason = "fine "+hostileBidi, "no "+hostileBidi
	for _, d := range []struct{ verb, reason string }{{"approve", p.approveReason}, {"deny", p.denyReason}, {"", ""}} {
		id := strings.TrimSpace(mustRun(t, w.bob, "request", "db2", "--login", w.login, "--reason", p.justification, "--no-wait"))
		if d.verb != "" {
			p.decisionOutputs = append(p.decisionOutputs, mustRun(t, w.carol, d.verb, id, "--reason", d.reason))
		}
	}

	// A key comment: jit admin user add sends the whole line.
	mallory := newEngineer(t, "mallory")
	keyFile := filepath.Join(t.TempDir(), "mallory.pub")
	comment := " c" + hostileTexts[3].text + hostileTexts[4].text + hostileBidi
	if err := os.WriteFile(keyFile, []byte(strings.Fields(mallory.AuthorizedKey)[0]+" "+strings.Fields(mallory.AuthorizedKey)[1]+comment+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.decisionOutputs = append(p.decisionOutputs, mustRun(t, w.admin, "admin", "user", "add", "mallory", "--key", keyFile, "--group", "dev"))
	return p
}

// refusalBound is how many bytes of a refused SSH user name the audit
// store keeps (daemon's maxRefusalText).
const refusalBound = 512

// checkFaithful: --format json gives back exactly what was planted, as
// bounded when it was stored.
func checkFaithful(t *testing.T, w *secWorld, p planted) {
	evs := auditList(t, w.auditor)
	for _, user := range p.users {
		// A refused user name is stored bounded (docs/cli.md): its first
		// refusalBound bytes and "..." (the planted long one is ASCII).
		want := user
		if len(user) > refusalBound {
			want = user[:refusalBound] + "..."
		}
		if _, ok := findEvent(evs, "session.rejected", func(ev auditEvent) bool { return ev.User == want }); !ok {
			t.Errorf("no session.rejected event with the exact user %.80q", want)
		}
	}
	for _, msg := range []string{p.approveReason, p.denyReason} {
		if !hasMessage(evs, msg) {
			t.Errorf("no audit event with the exact message %q", msg)
		}
	}
	commands := map[string]bool{}
	for _, s := range secSessions(t, w.auditor) {
		commands[s.Command] = true
	}
	for _, cmd := range []string{p.commandAll, p.commandLong, p.commandNUL} {
		if !commands["exec "+cmd] {
			t.Errorf("no session with the exact command %.80q", "exec "+cmd)
		}
	}
	out := mustRun(t, w.bob, "requests", "--format", "json")
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r api.Request
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("requests --format json: %v\n%s", err, line)
		}
		if r.Reason == p.justification {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d of bob's requests have the exact justification, want 3:\n%s", n, out)
	}
}

func hasMessage(evs []auditEvent, msg string) bool {
	for _, ev := range evs {
		if ev.Message == msg {
			return true
		}
	}
	return false
}

// checkNeutral fails the test if out could drive a terminal or fake a row:
// invalid UTF-8, a control other than newline, DEL, a C1 or bidi control,
// or a line over maxOutputLine bytes.
func checkNeutral(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s is not valid UTF-8: %.300q", what, out)
	}
	for i, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) {
			t.Errorf("%s holds %U at byte %d: %.200q", what, r, i, out[max(0, i-80):min(len(out), i+80)])
			return
		}
	}
	for _, line := range strings.Split(out, "\n") {
		if len(line) > maxOutputLine {
			t.Errorf("%s has a line of %d bytes, over %d: %.200q", what, len(line), maxOutputLine, line)
			return
		}
	}
}

// loadSigner reads an OpenSSH private key and, when certFile is not empty,
// makes it sign with that certificate.
func loadSigner(t *testing.T, keyFile, certFile string) ssh.Signer {
	t.Helper()
	b, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("read key: %v", err)
	}
	s, err := ssh.ParseRawPrivateKey(b)
	if err != nil {
		t.Fatalf("parse key %s: %v", keyFile, err)
	}
	signer, err := ssh.NewSignerFromKey(s)
	if err != nil {
		t.Fatalf("signer of %s: %v", keyFile, err)
	}
	if certFile == "" {
		return signer
	}
	cs, err := ssh.NewCertSigner(readCert(t, certFile), signer)
	if err != nil {
		t.Fatalf("certificate signer of %s: %v", filepath.Base(certFile), err)
	}
	return cs
}

// bastionDial connects to w's bastion as user with signer and returns the
// authentication's outcome.
func bastionDial(t *testing.T, w *secWorld, user string, signer ssh.Signer) error {
	t.Helper()
	c, err := ssh.Dial("tcp", w.d.Bastion, bastionClientConfig(t, w, user, signer))
	if err == nil {
		c.Close()
	}
	return err
}

// bastionRun runs command through w's bastion as user with signer, its
// stdin fed from stdin, and returns how it ended.
func bastionRun(t *testing.T, w *secWorld, user string, signer ssh.Signer, command, stdin string) error {
	t.Helper()
	c, err := ssh.Dial("tcp", w.d.Bastion, bastionClientConfig(t, w, user, signer))
	if err != nil {
		t.Fatalf("connect to the bastion as %.60q: %v", user, err)
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		t.Fatalf("session: %v", err)
	}
	defer s.Close()
	s.Stdin = strings.NewReader(stdin)
	if err := s.Run(command); err != nil {
		return fmt.Errorf("run %.60q: %w", command, err)
	}
	return nil
}

// bastionClientConfig logs in as user with signer and accepts only a host
// certificate signed by w's host CA, as jit ssh's known_hosts line does.
func bastionClientConfig(t *testing.T, w *secWorld, user string, signer ssh.Signer) *ssh.ClientConfig {
	t.Helper()
	keys, err := ca.LoadKeys(filepath.Join(w.d.Data, "ca"))
	if err != nil {
		t.Fatalf("load CA keys: %v", err)
	}
	hostCA := keys.Host.PublicKey().Marshal()
	return &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyAlgorithms: []string{ssh.CertAlgoED25519v01},
		HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
			cert, ok := key.(*ssh.Certificate)
			if !ok || cert.CertType != ssh.HostCert || !bytes.Equal(cert.SignatureKey.Marshal(), hostCA) {
				return fmt.Errorf("bastion host key %s is not certified by the host CA", ssh.FingerprintSHA256(key))
			}
			return nil
		},
		Timeout: commandTimeout,
	}
}
