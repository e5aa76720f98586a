package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/netnstest"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// ephemeralPolicy gives alice one-time accounts on every target (a real
// sshd in a private root: its own /etc, /home, /var), with the account
// rule the test sets; admin lists accounts, aud reads the audit log.
const ephemeralPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  admin: {groups: [admins], keys: [{{index .Key "admin"}}]}
  aud: {groups: [secops], keys: [{{index .Key "aud"}}]}
admins: {groups: [admins]}
auditors: {groups: [secops]}
hosts:
%s
roles:
  - name: db-oneoff
    groups: [dev]
    hosts: {names: ["*"]}
    account: ephemeral
%s
    ttl: 5m
    justification: {min_length: 5}
`

// principalsScript answers sshd's AuthorizedPrincipalsCommand (%u) as
// jit host principals answers after join (the contract's line for root):
// the provisioning principal, forced to the helper, for root; LOGIN@HOST
// for an ephemeral login.
const principalsScript = `#!/bin/sh
case "$1" in
root) echo 'command="` + api.AccountHelperPath + `",no-pty,no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc ` + api.ProvisionPrincipalLogin + `@%[1]s' ;;
jit-*) echo "$1@%[1]s" ;;
esac
`

// ephTarget is one target: a stock sshd in a private root trusting the
// target CA, with the account helper installed where join installs it.
type ephTarget struct {
	name string
	ns   *netnstest.Host
	root *netnstest.PrivateRoot
	sshd *sshdtest.Server
	cfg  sshdtest.Config
}

// ephemeralWorld is jitd with a bastion, and its targets (db1 first;
// root and sshd are db1's).
type ephemeralWorld struct {
	d                 *daemon
	targets           []*ephTarget
	root              *netnstest.PrivateRoot
	sshd              *sshdtest.Server
	alice, admin, aud *engineer
	rule, policy      string
}

// standardRule is the account rule the tests expect unless they test
// another: the group adm and one sudo command.
const standardRule = "    account_groups: [adm]\n    sudo: [/usr/bin/id -u]"

// newEphemeralWorld starts the world with rule as the role's account
// fields (YAML lines at the role's indentation) and targets db1 and the
// other hosts named.
func newEphemeralWorld(t *testing.T, rule string, more ...string) *ephemeralWorld {
	t.Helper()
	sshdtest.Require(t, "sshd", "ssh")
	for _, tool := range []string{"useradd", "userdel", "visudo", "sudo"} {
		sshdtest.Require(t, tool)
	}
	w := &ephemeralWorld{alice: newEngineer(t, "alice"), admin: newEngineer(t, "admin"), aud: newEngineer(t, "aud"), rule: rule}
	w.d = initDaemon(t)
	cmdDir := sshdtest.CommandDir(t)
	jit := filepath.Join(cmdDir, "jit")
	b, err := os.ReadFile(bin(t, "jit"))
	if err != nil || os.WriteFile(jit, b, 0o755) != nil {
		t.Fatalf("copy jit to %s: %v", jit, err)
	}
	targetCA := readPub(t, filepath.Join(w.d.Data, "ca", "target_ca.pub"))
	for _, name := range append([]string{"db1"}, more...) {
		w.targets = append(w.targets, newEphTarget(t, name, cmdDir, jit, targetCA))
	}
	w.root, w.sshd = w.targets[0].root, w.targets[0].sshd
	w.render(t)
	w.serve(t)
	return w
}

func newEphTarget(t *testing.T, name, cmdDir, jit string, targetCA ssh.PublicKey) *ephTarget {
	t.Helper()
	h := &ephTarget{name: name, ns: netnstest.New(t, name)}
	h.root = h.ns.PrivateRoot(t)
	principals := filepath.Join(cmdDir, "principals-"+name)
	if err := os.WriteFile(principals, []byte(fmt.Sprintf(principalsScript, name)), 0o755); err != nil {
		t.Fatal(err)
	}
	// The wrapper join installs, inside the private root's /usr/local.
	wrapper := "#!/bin/sh\nexec " + jit + " host account\n"
	if err := os.WriteFile(h.root.Path(api.AccountHelperPath), []byte(wrapper), 0o755); err != nil {
		t.Fatalf("install the helper on %s: %v", name, err)
	}
	// A host key of the test's own, so that a restarted sshd keeps the pin.
	_, hostKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h.cfg = sshdtest.Config{
		Wrap: h.root.Argv, ListenHost: h.ns.Addr.String(), HostPrivateKey: hostKey,
		TrustedUserCAKeys: []ssh.PublicKey{targetCA},
		Extra: []string{"AuthorizedPrincipalsFile none", "AuthorizedPrincipalsCommand " + principals + " %u",
			"AuthorizedPrincipalsCommandUser nobody"},
	}
	h.sshd = sshdtest.Start(t, h.cfg)
	return h
}

// render writes the policy for the targets and w.rule.
func (w *ephemeralWorld) render(t *testing.T) {
	t.Helper()
	var hosts []string
	for _, h := range w.targets {
		pin := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(h.sshd.HostKey)))
		hosts = append(hosts, fmt.Sprintf("  %s: {address: %q, host_key: %q}", h.name, h.sshd.Addr, pin))
	}
	w.policy = renderPolicy(t, fmt.Sprintf(ephemeralPolicy, strings.Join(hosts, "\n"), w.rule), "", []*engineer{w.alice, w.admin, w.aud}, nil)
}

// serve (re)starts jitd on the same data directory, with extra flags.
func (w *ephemeralWorld) serve(t *testing.T, extra ...string) {
	t.Helper()
	w.d.serve(t, w.policy, append([]string{"--bastion", "127.0.0.1:0"}, extra...)...)
	for _, e := range []*engineer{w.alice, w.admin, w.aud} {
		w.d.login(t, e)
	}
}

// stopTarget stops db1's sshd and waits until nothing listens on its port.
func (w *ephemeralWorld) stopTarget(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(w.targets[0].sshd.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "db1's sshd to stop", func() bool {
		c, err := net.DialTimeout("tcp", w.sshd.Addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
}

// startTarget starts db1's sshd again with the same host key and port.
func (w *ephemeralWorld) startTarget(t *testing.T) {
	t.Helper()
	w.targets[0].sshd = sshdtest.Start(t, w.targets[0].cfg)
	w.sshd = w.targets[0].sshd
}

func readPub(t *testing.T, path string) ssh.PublicKey {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	return k
}

// request asks for a one-time account on db1 for ttl and returns its
// login and request id.
func (w *ephemeralWorld) request(t *testing.T, ttl string) (string, string) {
	t.Helper()
	return w.requestOn(t, "db1", ttl)
}

// requestOn is request on host.
func (w *ephemeralWorld) requestOn(t *testing.T, host, ttl string) (string, string) {
	t.Helper()
	g := parseGrant(t, mustRun(t, w.alice, "request", host, "--reason", "rebuild the index", "--ttl", ttl, "--add-to-agent", "no", "--format", "json"))
	if len(g.Principals) != 1 || !regexp.MustCompile(`^jit-alice-[a-z2-7]{4}@`+host+`$`).MatchString(g.Principals[0]) {
		t.Fatalf("jit request granted %q, not one one-time login on %s", g.Principals, host)
	}
	return strings.TrimSuffix(g.Principals[0], "@"+host), g.Request.ID
}

// accounts is the admin's view of every account (removed ones too).
func (w *ephemeralWorld) accounts(t *testing.T) map[string]api.EphemeralAccount {
	t.Helper()
	out := mustRun(t, w.admin, "hosts", "--accounts", "--all", "--format", "json")
	got := map[string]api.EphemeralAccount{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var a api.EphemeralAccount
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("jit hosts --accounts line %q: %v", line, err)
		}
		got[a.Login] = a
	}
	return got
}

// userExists reports whether login is a user of db1.
func (w *ephemeralWorld) userExists(t *testing.T, login string) bool {
	t.Helper()
	return w.targets[0].userExists(t, login)
}

// gone checks that nothing of login is left on db1.
func (w *ephemeralWorld) gone(t *testing.T, login string) {
	t.Helper()
	w.targets[0].gone(t, login)
}

// userExists reports whether login is a user of h (getent in its private
// root).
func (h *ephTarget) userExists(t *testing.T, login string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	return h.root.Command(ctx, "getent", "passwd", login).Run() == nil
}

// gone checks that nothing of login is left on h: user, group, home,
// sudoers file.
func (h *ephTarget) gone(t *testing.T, login string) {
	t.Helper()
	if h.userExists(t, login) {
		t.Errorf("user %s is still in %s's passwd", login, h.name)
	}
	for _, p := range []string{"/home/" + login, "/etc/sudoers.d/" + api.AccountSudoersName(login)} {
		if _, err := os.Lstat(h.root.Path(p)); !os.IsNotExist(err) {
			t.Errorf("%s is left on %s (%v)", p, h.name, err)
		}
	}
	if grp, err := os.ReadFile(h.root.Path("/etc/group")); err != nil || strings.Contains(string(grp), login) {
		t.Errorf("group of %s left in %s's /etc/group (%v)", login, h.name, err)
	}
}

// waitState waits until the admin view shows login in state.
func (w *ephemeralWorld) waitState(t *testing.T, login, state string, within time.Duration) api.EphemeralAccount {
	t.Helper()
	var a api.EphemeralAccount
	testkit.WaitFor(t, within, login+" "+state, func() bool {
		a = w.accounts(t)[login]
		return a.State == state
	})
	return a
}

// TestEphemeralAccountLifecycle is issue 13 end to end through the
// binaries: two grants of alice on db1 at once get two accounts; jit ssh
// db1 logs in as the one-time login, which has the role's groups and its
// one sudo command; after the grants expire both accounts, their homes
// (with what was left there), sudoers files and groups are gone, and a
// later grant gets a new UID, never an old one.
func TestEphemeralAccountLifecycle(t *testing.T) {
	w := newEphemeralWorld(t, standardRule)
	loginA, idA := w.request(t, "40s")
	if a := w.accounts(t)[loginA]; a.State != "planned" || a.RequestID != idA || w.userExists(t, loginA) {
		t.Fatalf("before any session: %+v (an account exists: %v)", a, w.userExists(t, loginA))
	}
	r := start(t, w.alice, "ssh", "db1", "--", "id; sudo -n /usr/bin/id -u; echo left > ~/notes; sudo -n /bin/cat /etc/shadow || echo no-shadow").wait(t, commandTimeout)
	want := regexp.MustCompile(`uid=61000\(` + loginA + `\) gid=61000\(` + loginA + `\) groups=61000\(` + loginA + `\),\d+\(adm\),\d+\(` + api.AccountManagedGroup + `\)`)
	if r.Code != 0 || !want.MatchString(r.Stdout) || !regexp.MustCompile(`(?m)^0$`).MatchString(r.Stdout) || !strings.Contains(r.Stdout, "no-shadow") {
		t.Fatalf("jit ssh db1 as %s: %v\nsshd:\n%s", loginA, r, w.sshd.Log())
	}
	if b, err := os.ReadFile(w.root.Path("/home/" + loginA + "/notes")); err != nil || string(b) != "left\n" {
		t.Fatalf("file left in the home: %q, %v", b, err)
	}
	if a := w.accounts(t)[loginA]; a.State != "created" || a.UID != 61000 {
		t.Fatalf("after the first session: %+v", a)
	}

	// A second grant of alice on db1 at the same time: its own account.
	loginB, _ := w.request(t, "30s")
	if loginB == loginA {
		t.Fatalf("two grants share the login %s", loginA)
	}
	r = start(t, w.alice, "ssh", loginB+"@db1", "--", "id -un; id -u").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stdout, loginB+"\n61001\n") {
		t.Fatalf("second grant: %v", r)
	}

	for _, l := range []string{loginA, loginB} {
		a := w.waitState(t, l, "removed", 90*time.Second)
		w.gone(t, l)
		if a.RemovedAt == nil || a.LastError != "" {
			t.Errorf("removed account %+v", a)
		}
	}
	evs := auditList(t, w.aud)
	for _, typ := range []string{"account.created", "account.removed"} {
		for _, l := range []string{loginA, loginB} {
			ev, ok := findEvent(evs, typ, func(e auditEvent) bool { return e.Login == l })
			if !ok || ev.Host != "db1" || ev.RequestID == "" || ev.Data["uid"] == "" || ev.Data["uid"] == "0" {
				t.Errorf("%s of %s: %+v", typ, l, ev)
			}
		}
	}
	if _, ok := findEvent(evs, "target_cert.issued", func(e auditEvent) bool {
		return strings.Contains(e.Data["principals"], api.ProvisionPrincipalLogin+"@db1")
	}); !ok {
		t.Error("no provisioning certificate recorded")
	}

	// The UIDs are never handed out again.
	loginC, _ := w.request(t, "30s")
	r = start(t, w.alice, "ssh", loginC+"@db1", "--", "id -u").wait(t, commandTimeout)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "61002" {
		t.Fatalf("third grant after removal: %v", r)
	}
}

// ended waits for a background jit ssh to end.
func ended(t *testing.T, b *background, within time.Duration) result {
	t.Helper()
	return b.wait(t, within)
}

// TestEphemeralAccountCutAndRevoked: a session still running at expiry is
// cut as any session, with a process it left behind on the target, and
// then the account goes (the helper kills what is left); a revoked grant's
// session is cut mid-way and its account removed without waiting for
// expiry.
func TestEphemeralAccountCutAndRevoked(t *testing.T) {
	w := newEphemeralWorld(t, standardRule)
	loginA, _ := w.request(t, "25s")
	bg := start(t, w.alice, "ssh", "db1", "--", "nohup sleep 600 >/dev/null 2>&1 & echo started; sleep 600")
	testkit.WaitFor(t, 20*time.Second, "the session to start", func() bool { return w.accounts(t)[loginA].State == "created" })
	r := ended(t, bg, 60*time.Second)
	if r.Code == 0 || !strings.Contains(r.Stdout, "started") {
		t.Fatalf("session at expiry: %v", r)
	}
	w.waitState(t, loginA, "removed", 60*time.Second)
	w.gone(t, loginA)
	if ps, err := os.ReadFile("/proc/loadavg"); err == nil && len(ps) == 0 {
		t.Fatal("unreadable /proc")
	}
	for _, pid := range w.root.Processes() {
		if st, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil && st.Sys().(*syscall.Stat_t).Uid == 61000 {
			t.Errorf("process %d of the removed account's UID survived", pid)
		}
	}

	loginB, _ := w.request(t, "5m")
	g := w.accounts(t)[loginB]
	bg = start(t, w.alice, "ssh", loginB+"@db1", "--", "echo started; sleep 600")
	testkit.WaitFor(t, 20*time.Second, "the session to start", func() bool { return w.accounts(t)[loginB].State == "created" })
	serial := grantSerial(t, w, g.RequestID)
	mustRun(t, w.admin, "admin", "revoke", serial, "--reason", "leaver")
	r = ended(t, bg, 30*time.Second)
	if r.Code == 0 {
		t.Fatalf("revoked session went on: %v", r)
	}
	w.waitState(t, loginB, "removed", 30*time.Second)
	w.gone(t, loginB)
}

// scrape GETs url and returns the body.
func scrape(t *testing.T, url string) string {
	t.Helper()
	c := http.Client{Timeout: commandTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s, %v", url, resp.Status, err)
	}
	return string(b)
}

// grantSerial is the certificate serial of request id, from the audit log.
func grantSerial(t *testing.T, w *ephemeralWorld, id string) string {
	t.Helper()
	ev, ok := findEvent(auditList(t, w.aud), "cert.issued", func(e auditEvent) bool { return e.RequestID == id })
	if !ok || ev.Serial == "" {
		t.Fatalf("no cert.issued for %s", id)
	}
	return ev.Serial
}

// TestEphemeralAccountRestartAndUnreachable: jitd restarts between the
// create and the removal, and at removal time the target is down: the
// failure is recorded and retried with backoff (visible to admins and in
// the metrics) until the target is back, and the account then goes.
func TestEphemeralAccountRestartAndUnreachable(t *testing.T) {
	w := newEphemeralWorld(t, standardRule)
	login, _ := w.request(t, "20s")
	if r := start(t, w.alice, "ssh", "db1", "--", "id -u").wait(t, commandTimeout); r.Code != 0 || strings.TrimSpace(r.Stdout) != "61000" {
		t.Fatalf("session: %v", r)
	}
	w.d.terminate(t)
	w.stopTarget(t)
	w.serve(t, "--metrics", "127.0.0.1:0")
	a := w.waitState(t, login, "removing", 60*time.Second)
	m := regexp.MustCompile(`metrics=(\S+)`).FindStringSubmatch(w.d.log.String())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", w.d.log)
	}
	metrics := scrape(t, "http://"+m[1]+"/metrics")
	for _, line := range []string{`jitssh_ephemeral_accounts{state="removing"} 1`, "jitssh_ephemeral_removals_pending 1"} {
		if !strings.Contains(metrics, line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, metrics)
		}
	}
	if a.Attempts < 1 || a.NextAttempt == nil || !strings.Contains(a.LastError, "unreachable") {
		t.Fatalf("failed removal: %+v", a)
	}
	out := mustRun(t, w.admin, "hosts", "--accounts")
	if !strings.Contains(out, login) || !strings.Contains(out, "removing") || !strings.Contains(out, "attempts=") {
		t.Fatalf("jit hosts --accounts does not show the stuck removal:\n%s", out)
	}
	if ev, ok := findEvent(auditList(t, w.aud), "account.remove_failed", func(e auditEvent) bool { return e.Login == login }); !ok || code(ev) != "unreachable" || ev.Data["uid"] != "61000" {
		t.Fatalf("remove_failed event %+v", ev)
	}
	w.startTarget(t)
	w.waitState(t, login, "removed", 90*time.Second)
	w.gone(t, login)
}

// TestEphemeralAccountRefusals: a group the host lacks, and a sudo rule
// that visudo rejects, refuse the session with the reason and leave
// nothing on the host; a name that exists on the host and is not
// jitssh's is never adopted. Each is audited as account.create_failed.
func TestEphemeralAccountRefusals(t *testing.T) {
	w := newEphemeralWorld(t, "    account_groups: [adm, no-such-group]")
	tests := []struct {
		name, rule, code string
		taken            bool
	}{
		{name: "unknown group", code: "unknown_group"},
		{name: "visudo rejects the rule", rule: "    sudo: [/usr/bin/sudoedit /etc/motd]", code: "sudo_rejected"},
		{name: "name taken on the host", rule: standardRule, code: "name_exists", taken: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.rule != "" {
				w.policy = regexp.MustCompile(`(?m)^    (account_groups|sudo): .*\n`).ReplaceAllString(w.policy, "")
				w.policy = strings.Replace(w.policy, "    account: ephemeral\n", "    account: ephemeral\n"+tt.rule+"\n", 1)
				w.d.terminate(t)
				w.serve(t)
			}
			login, _ := w.request(t, "5m")
			if tt.taken {
				w.root.Run(t, "useradd", "-l", "-M", "-s", "/bin/sh", login)
			}
			before := map[string]map[string]string{}
			for _, dir := range []string{"/home", "/etc/sudoers.d"} {
				before[dir] = testkit.Tree(t, w.root.Path(dir))
			}
			r := start(t, w.alice, "ssh", login+"@db1", "--", "id").wait(t, commandTimeout)
			if r.Code == 0 || !strings.Contains(r.Stderr, "could not be created on db1 ("+tt.code+")") {
				t.Fatalf("session: %v", r)
			}
			for dir, tree := range before {
				if diff := testkit.TreeDiff(tree, testkit.Tree(t, w.root.Path(dir))); len(diff) != 0 {
					t.Errorf("a refused create changed %s: %v", dir, diff)
				}
			}
			if tt.taken {
				if grp := w.root.Run(t, "id", "-Gn", login); strings.Contains(grp, api.AccountManagedGroup) {
					t.Fatalf("the foreign user was adopted: %s", grp)
				}
			} else if w.userExists(t, login) {
				t.Fatalf("a refused create left the user %s", login)
			}
			ev, ok := findEvent(auditList(t, w.aud), "account.create_failed", func(e auditEvent) bool { return e.Login == login })
			if !ok || code(ev) != tt.code {
				t.Fatalf("create_failed event %+v", ev)
			}
		})
	}
}

// TestEphemeralAccountTwoHostsAndRoleChange: grants on two hosts at once
// get an account on each, made and removed independently (each host's UID
// range starts afresh: UIDs are per host); and a role change between two
// grants gives the second the groups in force when it was requested.
func TestEphemeralAccountTwoHostsAndRoleChange(t *testing.T) {
	w := newEphemeralWorld(t, standardRule, "db2")
	login1, _ := w.requestOn(t, "db1", "30s")
	login2, _ := w.requestOn(t, "db2", "30s")
	for host, login := range map[string]string{"db1": login1, "db2": login2} {
		r := start(t, w.alice, "ssh", host, "--", "id -un; id -u; id -Gn").wait(t, commandTimeout)
		if r.Code != 0 || !strings.Contains(r.Stdout, login+"\n61000\n") || !strings.Contains(r.Stdout, " adm ") {
			t.Fatalf("%s: %v", host, r)
		}
	}
	// The role now adds a group: the next grant gets it, the live ones
	// keep what they were granted.
	w.rule = strings.Replace(standardRule, "[adm]", "[adm, users]", 1)
	w.render(t)
	w.d.terminate(t)
	w.serve(t)
	login3, _ := w.requestOn(t, "db1", "30s")
	r := start(t, w.alice, "ssh", login3+"@db1", "--", "id -Gn").wait(t, commandTimeout)
	if r.Code != 0 || !strings.Contains(r.Stdout, "users") {
		t.Fatalf("after the role change: %v", r)
	}
	if grp := w.targets[0].root.Run(t, "id", "-Gn", login1); strings.Contains(grp, "users") {
		t.Fatalf("the earlier grant's account changed: %s", grp)
	}
	for i, login := range []string{login1, login2} {
		w.waitState(t, login, "removed", 90*time.Second)
		w.targets[i].gone(t, login)
	}
	w.waitState(t, login3, "removed", 90*time.Second)
	w.targets[0].gone(t, login3)
}
