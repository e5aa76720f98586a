package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/netnstest"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// fleetPolicy has no hosts section: hosts come from the store, enrolled
// with jit host join; the role selects them by label.
const fleetPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  admin: {groups: [admins], keys: [{{index .Key "admin"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
admins: {groups: [admins]}
auditors: {groups: [secops]}
roles:
  - name: prod-shell
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [{{.Login}}]
    ttl: 10m
    justification: {min_length: 10}
`

// joinTokenPattern is a join token as the contract makes it: jhj_ and 32
// random bytes in unpadded base64url.
var joinTokenPattern = regexp.MustCompile(`jhj_[A-Za-z0-9_-]{43}`)

// fleetHost is a stock OpenSSH host on a network namespace of its own,
// its configuration under root (ROOT/etc/ssh/sshd_config including
// ROOT/etc/ssh/sshd_config.d/*.conf), trusting nobody until joined.
type fleetHost struct {
	name string
	ns   *netnstest.Host
	root string
	sshd *sshdtest.Server
}

// fleet is the world of the fleet test: jitd in the root namespace with
// its API on db1's veth peer and its bastion on the engineer's, known to
// engineers as bastion.test; db1 to enrol; alice on a machine of her own
// whose /etc/hosts maps bastion.test to the bastion.
type fleet struct {
	d                     *daemon
	db1                   *fleetHost
	eng                   *netnstest.Host
	cmdDir, jit           string // jit copied where sshd runs commands from
	etcHosts              string // alice's /etc/hosts
	apiAddr, bastionPort  string
	login                 string
	alice, admin, auditor *engineer
}

// fleetRequire needs OpenSSH and network namespaces (a failure with
// CI=true, a skip with the reason otherwise).
func fleetRequire(t *testing.T) {
	t.Helper()
	sshdtest.Require(t, "sshd", "ssh")
	netnstest.Require(t)
}

func newFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{login: sshdtest.LocalUser(t), cmdDir: sshdtest.CommandDir(t)}
	// sshd runs the AuthorizedPrincipalsCommand that join installs (this
	// jit) only from a root-owned path that nobody else may write.
	f.jit = filepath.Join(f.cmdDir, "jit")
	b, err := os.ReadFile(bin(t, "jit"))
	if err != nil || os.WriteFile(f.jit, b, 0o755) != nil {
		t.Fatalf("copy jit to %s: %v", f.jit, err)
	}
	f.db1 = f.newHost(t, "db1")
	f.eng = netnstest.New(t, "engineer")
	f.etcHosts = netnstest.HostsFile(t, map[string]netip.Addr{"bastion.test": f.eng.HostAddr})
	f.alice, f.admin, f.auditor = newEngineer(t, "alice"), newEngineer(t, "admin"), newEngineer(t, "auditor")
	f.d = initDaemon(t)
	f.apiAddr = freeAddr(t, f.db1.ns.HostAddr)
	_, f.bastionPort, _ = net.SplitHostPort(freeAddr(t, f.eng.HostAddr))
	f.serve(t)
	f.d.login(t, f.admin)
	f.d.login(t, f.auditor)
	if r := f.asAlice(t, "login", "--ca", "https://"+f.d.API, "--fingerprint", f.d.Fingerprint, "--user", "alice", "-i", f.alice.Key); r.Code != 0 {
		t.Fatalf("alice logs in from her machine: %v", r)
	}
	return f
}

// newHost starts a stock host: its root under the command directory, so
// that the user nobody, as whom sshd runs the principals command, can read
// what join installs there.
func (f *fleet) newHost(t *testing.T, name string) *fleetHost {
	t.Helper()
	h := &fleetHost{name: name, ns: netnstest.New(t, name), root: filepath.Join(f.cmdDir, name+"-root")}
	if err := os.Mkdir(h.root, 0o755); err != nil {
		t.Fatal(err)
	}
	h.sshd = sshdtest.Start(t, sshdtest.Config{Root: h.root, Wrap: h.ns.Argv, ListenHost: h.ns.Addr.String()})
	return h
}

// serve (re)starts jitd on the same addresses: the API on db1's veth peer
// (a target joins there, alice reaches it from her namespace), the bastion
// on the engineer's, by its public name.
func (f *fleet) serve(t *testing.T) {
	t.Helper()
	policy := renderPolicy(t, fleetPolicy, f.login, []*engineer{f.alice, f.admin, f.auditor}, nil)
	f.d.serve(t, policy, "--api", f.apiAddr,
		"--bastion", net.JoinHostPort(f.eng.HostAddr.String(), f.bastionPort),
		"--public-addr", "bastion.test:"+f.bastionPort)
}

// freeAddr is a TCP address of ip with a port free at the time of asking.
func freeAddr(t *testing.T, ip netip.Addr) string {
	t.Helper()
	l, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatalf("find a free port of %s: %v", ip, err)
	}
	defer l.Close()
	return l.Addr().String()
}

// asAlice runs jit as alice on her own machine: in the engineer's
// namespace, with bastion.test in its /etc/hosts.
func (f *fleet) asAlice(t *testing.T, args ...string) result {
	t.Helper()
	return f.startAlice(t, args...).wait(t, commandTimeout)
}

func (f *fleet) startAlice(t *testing.T, args ...string) *background {
	t.Helper()
	cmd := f.eng.CommandWithHosts(context.Background(), f.etcHosts, bin(t, "jit"), args...)
	cmd.Env, cmd.Dir = f.alice.env(), f.alice.Home
	return startCommand(t, cmd, args...)
}

// onHost runs the installed jit as root on h.
func (f *fleet) onHost(t *testing.T, h *fleetHost, args ...string) result {
	t.Helper()
	cmd := h.ns.Command(context.Background(), f.jit, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TZ=UTC"}
	cmd.Dir = h.root
	return startCommand(t, cmd, args...).wait(t, commandTimeout)
}

// token makes a join token for h as admin.
func (f *fleet) token(t *testing.T, h *fleetHost, extra ...string) string {
	t.Helper()
	out := mustRun(t, f.admin, append([]string{"admin", "host", "token", h.name, "--address", h.ns.Addr.String() + ":22", "--label", "env=prod"}, extra...)...)
	tok := joinTokenPattern.FindString(out)
	if tok == "" {
		t.Fatalf("jit admin host token %s printed no jhj_ token:\n%s", h.name, out)
	}
	return tok
}

// join runs jit host join on h, reloading its sshd with SIGHUP.
func (f *fleet) join(t *testing.T, h *fleetHost, token string, extra ...string) result {
	t.Helper()
	args := []string{"host", "join", "--ca", "https://" + f.d.API, "--fingerprint", f.d.Fingerprint, "--token", token,
		"--root", h.root, "--reload-command", fmt.Sprintf("kill -HUP %d", h.sshd.Pid()), "--sshd", sshdtest.Path("sshd")}
	return f.onHost(t, h, append(args, extra...)...)
}

// renewArgs is jit host renew --force for h, with the reload and sshd
// flags if renew has them (the contract names only --root).
func (f *fleet) renewArgs(t *testing.T, h *fleetHost) []string {
	t.Helper()
	// --force: a certificate this young is otherwise kept (only the KRL is
	// refreshed).
	return []string{"host", "renew", "--force", "--root", h.root,
		"--reload-command", fmt.Sprintf("kill -HUP %d", h.sshd.Pid()), "--sshd", sshdtest.Path("sshd")}
}

// installed are the files jit host join writes under h's root.
func (h *fleetHost) installed() []string {
	etc := filepath.Join(h.root, "etc")
	j := filepath.Join(etc, "ssh", "jitssh")
	return []string{
		filepath.Join(j, "host"), filepath.Join(j, "api"), filepath.Join(j, "target_ca.pub"),
		filepath.Join(j, "revoked.krl"), filepath.Join(j, "logins"),
		h.certPath(), filepath.Join(etc, "ssh", "sshd_config.d", "50-jitssh.conf"),
		filepath.Join(etc, "systemd", "system", "jitssh-renew.service"),
		filepath.Join(etc, "systemd", "system", "jitssh-renew.timer"),
	}
}

func (h *fleetHost) certPath() string {
	return filepath.Join(h.root, "etc", "ssh", "ssh_host_ed25519_key-cert.pub")
}

// reloads counts the SIGHUPs h's sshd received.
func (h *fleetHost) reloads() int {
	return strings.Count(h.sshd.Log(), "Received SIGHUP")
}

// waitReload waits until sshd has re-executed itself after SIGHUP number
// after+1 and accepts connections again.
func (h *fleetHost) waitReload(t *testing.T, after int) {
	t.Helper()
	testkit.WaitFor(t, 10*time.Second, h.name+"'s sshd to reload", func() bool { return h.reloads() > after })
	if err := h.sshd.WaitAccepting(10 * time.Second); err != nil {
		t.Fatalf("%s after reload: %v\n%s", h.name, err, h.sshd.Log())
	}
}

// unchanged fails t unless root's tree is still before and sshd got no
// SIGHUP since reloads.
func (h *fleetHost) unchanged(t *testing.T, before map[string]string, reloads int) {
	t.Helper()
	if diff := testkit.TreeDiff(before, testkit.Tree(t, h.root)); len(diff) > 0 {
		t.Errorf("%s: a failed command changed %s", h.name, strings.Join(diff, ", "))
	}
	if h.reloads() != reloads {
		t.Errorf("%s: sshd reloaded by a failed command:\n%s", h.name, h.sshd.Log())
	}
}

// fleetHostEntry is one entry of jit hosts --format json (api.HostEntry of
// the contract).
type fleetHostEntry struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels"`
	Logins []struct {
		Login    string `json:"login"`
		Role     string `json:"role"`
		Approval bool   `json:"approval"`
		Ticket   bool   `json:"ticket"`
		MaxTTL   string `json:"max_ttl"`
	} `json:"logins"`
}

// parseHosts reads jit hosts --format json: one JSON array, or one entry
// per line.
func parseHosts(t *testing.T, out string) []fleetHostEntry {
	t.Helper()
	var hs []fleetHostEntry
	if strings.HasPrefix(strings.TrimSpace(out), "[") {
		if err := json.Unmarshal([]byte(out), &hs); err != nil {
			t.Fatalf("jit hosts --format json: %v\n%s", err, out)
		}
		return hs
	}
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var h fleetHostEntry
		if err := dec.Decode(&h); err == io.EOF {
			return hs
		} else if err != nil {
			t.Fatalf("jit hosts --format json: %v\n%s", err, out)
		}
		hs = append(hs, h)
	}
}

// knownHosts fetches GET /v1/known_hosts, public data without a login.
func (f *fleet) knownHosts(t *testing.T) string {
	t.Helper()
	c, err := api.NewClient("https://"+f.d.API, f.d.Fingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	text, err := c.KnownHosts(context.Background())
	if err != nil {
		t.Fatalf("GET /v1/known_hosts: %v", err)
	}
	return text
}

func caKeys(t *testing.T, d *daemon) *ca.Keys {
	t.Helper()
	keys, err := ca.LoadKeys(filepath.Join(d.Data, "ca"))
	if err != nil {
		t.Fatalf("load CA keys of %s: %v", d.Data, err)
	}
	return keys
}

// sameSet reports whether got holds exactly want, in any order.
func sameSet(got []string, want ...string) bool {
	return slices.Equal(slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want)))
}

func authorized(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// TestFleet is issue 10 through the binaries, on separate hosts: an admin
// makes a join token, jit host join enrols a stock sshd, alice on her own
// machine lists hosts, requests access and runs a shell and an exec
// through the bastion by its public name, the host certificate is renewed,
// and removing the host ends her live session. Each failure case leaves the
// host as it was.
func TestFleet(t *testing.T) {
	fleetRequire(t)
	t.Parallel()
	f := newFleet(t)
	t.Run("dry run changes nothing", f.testDryRun)
	if !t.Run("join", f.testJoin) {
		t.FailNow()
	}
	t.Run("bad tokens change nothing", f.testBadTokens)
	t.Run("hosts listed", f.testHostsListed)
	t.Run("sessions by the public name", f.testSessions)
	t.Run("host key change refused", f.testHostKeyChange)
	t.Run("renew", f.testRenew)
	t.Run("renew with the daemon unreachable changes nothing", f.testRenewUnreachable)
	// Restarted here, so that the daemon lives as long as the test, not
	// the subtest.
	f.serve(t)
	t.Run("sessions after the failed renewal", f.testStillIn)
	t.Run("remove ends the live session", f.testRemove)
	t.Run("sshd -t failing changes nothing", f.testSSHDCheckFails)
}

func (f *fleet) testDryRun(t *testing.T) {
	h := f.db1
	before, reloads := testkit.Tree(t, h.root), h.reloads()
	// A dry run does not send its token (it could be used only once).
	r := f.join(t, h, "jhj_"+strings.Repeat("B", 43), "--dry-run")
	if r.Code != 0 {
		t.Fatalf("jit host join --dry-run: %v", r)
	}
	for _, p := range h.installed() {
		if rel := strings.TrimPrefix(p, h.root); !strings.Contains(r.Stdout, rel) {
			t.Errorf("dry run does not list %s:\n%s", rel, r.Stdout)
		}
	}
	if !strings.Contains(r.Stdout, "AuthorizedPrincipalsCommand "+f.jit+" host principals") {
		t.Errorf("dry run does not print the drop-in:\n%s", r.Stdout)
	}
	h.unchanged(t, before, reloads)
}

func (f *fleet) testJoin(t *testing.T) {
	h, keys := f.db1, caKeys(t, f.d)
	reloads := h.reloads()
	token := f.token(t, h)
	r := f.join(t, h, token)
	if r.Code != 0 {
		t.Fatalf("jit host join: %v\nsshd log:\n%s", r, h.sshd.Log())
	}
	for _, p := range h.installed() {
		if !exists(p) {
			t.Errorf("join did not write %s", p)
		}
		if rel := strings.TrimPrefix(p, h.root); !strings.Contains(r.Stdout, rel) {
			t.Errorf("join did not print %s:\n%s", rel, r.Stdout)
		}
	}
	h.waitReload(t, reloads)
	read := func(p string) string {
		b, _ := os.ReadFile(filepath.Join(h.root, p))
		return string(b)
	}
	if got := strings.TrimSpace(read("etc/ssh/jitssh/host")); got != "db1" {
		t.Errorf("host file %q, want db1", got)
	}
	if !strings.Contains(read("etc/ssh/jitssh/logins"), f.login) {
		t.Errorf("logins file lacks %s:\n%s", f.login, read("etc/ssh/jitssh/logins"))
	}
	if got := strings.TrimSpace(read("etc/ssh/jitssh/target_ca.pub")); !strings.HasPrefix(got, authorized(keys.Target.PublicKey())) {
		t.Errorf("target_ca.pub %q, want the target CA", got)
	}
	dropIn := read("etc/ssh/sshd_config.d/50-jitssh.conf")
	for _, want := range []string{"HostCertificate ", "TrustedUserCAKeys ", "RevokedKeys ", "AuthorizedPrincipalsCommand " + f.jit + " host principals", "AuthorizedPrincipalsCommandUser nobody"} {
		if !strings.Contains(dropIn, want) {
			t.Errorf("drop-in lacks %q:\n%s", want, dropIn)
		}
	}
	cert := readCert(t, h.certPath())
	life := time.Until(time.Unix(int64(cert.ValidBefore), 0))
	if cert.CertType != ssh.HostCert || !bytes.Equal(cert.SignatureKey.Marshal(), keys.Host.PublicKey().Marshal()) ||
		!sameSet(cert.ValidPrincipals, "db1", h.ns.Addr.String()) || life < 29*24*time.Hour || life > 31*24*time.Hour {
		t.Errorf("host certificate type %d principals %v valid %v more, want from the host CA for db1 and %s for 30 days", cert.CertType, cert.ValidPrincipals, life, h.ns.Addr)
	}
	if r := f.join(t, h, token); r.Code == 0 || !strings.Contains(r.Stderr, "join_token_invalid") {
		t.Errorf("join again with the used token: %v; want join_token_invalid", r)
	}
	evs := auditList(t, f.auditor)
	for _, typ := range []string{"host.token_created", "host.joined"} {
		if _, ok := findEvent(evs, typ, func(ev auditEvent) bool { return ev.Host == "db1" }); !ok {
			t.Errorf("no %s event for db1", typ)
		}
	}
}

func (f *fleet) testBadTokens(t *testing.T) {
	h := f.db1
	expired := f.token(t, h, "--ttl", "1s")
	time.Sleep(2 * time.Second)
	tests := []struct {
		name, token, want string
	}{
		{name: "unknown token", token: "jhj_" + strings.Repeat("A", 43), want: "join_token_invalid"},
		{name: "expired token", token: expired, want: "expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, reloads := testkit.Tree(t, h.root), h.reloads()
			r := f.join(t, h, tt.token)
			if r.Code == 0 || !strings.Contains(strings.ToLower(r.Stderr), tt.want) {
				t.Fatalf("jit host join with an %s: %v; want a refusal naming %q", tt.name, r, tt.want)
			}
			h.unchanged(t, before, reloads)
		})
	}
}

func (f *fleet) testHostsListed(t *testing.T) {
	r := f.asAlice(t, "hosts", "--format", "json")
	if r.Code != 0 {
		t.Fatalf("jit hosts: %v", r)
	}
	for _, e := range parseHosts(t, r.Stdout) {
		if e.Name != "db1" {
			continue
		}
		if e.Labels["env"] != "prod" || len(e.Logins) != 1 || e.Logins[0].Login != f.login || e.Logins[0].Role != "prod-shell" || e.Logins[0].Approval || e.Logins[0].Ticket {
			t.Errorf("db1 listed as %+v, want env=prod and %s by prod-shell without approval or ticket", e, f.login)
		}
		return
	}
	t.Errorf("jit hosts does not list db1:\n%s", r.Stdout)
}

func (f *fleet) testSessions(t *testing.T) {
	h := f.db1
	if r := f.asAlice(t, "request", "db1", "--login", f.login, "--reason", "fleet check of db1"); r.Code != 0 {
		t.Fatalf("jit request db1: %v", r)
	}
	r := f.asAlice(t, "ssh", f.login+"@db1", "--", "echo conn=$SSH_CONNECTION; exit 4")
	// The bastion dials db1 from db1's veth peer, the source-address its
	// per-session certificate names by default.
	if r.Code != 4 || !strings.Contains(r.Stdout, "conn="+h.ns.HostAddr.String()+" ") || !strings.Contains(r.Stdout, " "+h.ns.Addr.String()+" 22") {
		t.Fatalf("jit ssh db1 exec: %v\nwant exit 4 from %s to %s 22\nsshd log:\n%s", r, h.ns.HostAddr, h.ns.Addr, h.sshd.Log())
	}
	if r := f.asAlice(t, "ssh", "-t", f.login+"@db1", "--", "echo hi-fleet-pty; exit 3"); r.Code != 3 || !strings.Contains(r.Stdout, "hi-fleet-pty") {
		t.Fatalf("jit ssh -t db1: %v; want exit 3 and the output", r)
	}
	if s := secSessionWith(t, f.auditor, "hi-fleet-pty", sessionWait); s.Host != "db1" || s.ExitStatus != 3 {
		t.Errorf("pty session %+v, want db1 with exit status 3", s)
	}
	// Stock ssh checks the bastion's host certificate at its public name.
	kh := filepath.Join(f.alice.Home, "known_hosts_by_name")
	line := fmt.Sprintf("@cert-authority [bastion.test]:%s %s\n", f.bastionPort, authorized(caKeys(t, f.d).Host.PublicKey()))
	if err := os.WriteFile(kh, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(f.alice.Home, "state", "keys", f.login+"@db1")
	cmd := f.eng.CommandWithHosts(context.Background(), f.etcHosts, sshdtest.Path("ssh"), "-F", "none", "-o", "BatchMode=yes",
		"-o", "StrictHostKeyChecking=yes", "-o", "UserKnownHostsFile="+kh, "-o", "GlobalKnownHostsFile=/dev/null",
		"-o", "IdentitiesOnly=yes", "-i", key, "-p", f.bastionPort, "-l", f.login+"@db1", "bastion.test", "echo by-name")
	if r := startCommand(t, cmd, "ssh bastion.test").wait(t, commandTimeout); r.Code != 0 || strings.TrimSpace(r.Stdout) != "by-name" {
		t.Fatalf("stock ssh to bastion.test:%s: %v", f.bastionPort, r)
	}
}

func (f *fleet) testHostKeyChange(t *testing.T) {
	h := f.db1
	// Inside the root: join refuses a host key outside it (its certificate
	// would be written beside it).
	keyPath := filepath.Join(h.root, "etc", "ssh", "other_host_ed25519_key")
	if out, err := exec.Command(sshdtest.Path("ssh-keygen"), "-q", "-t", "ed25519", "-N", "", "-f", keyPath).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	token := f.token(t, h)
	before, reloads := testkit.Tree(t, h.root), h.reloads()
	r := f.join(t, h, token, "--host-key", keyPath)
	if r.Code == 0 || !strings.Contains(r.Stderr, "host_key_changed") {
		t.Fatalf("jit host join with another host key: %v; want host_key_changed", r)
	}
	h.unchanged(t, before, reloads)
}

func (f *fleet) testRenew(t *testing.T) {
	h := f.db1
	old := readCert(t, h.certPath())
	reloads := h.reloads()
	if r := f.onHost(t, h, f.renewArgs(t, h)...); r.Code != 0 {
		t.Fatalf("jit host renew: %v", r)
	}
	h.waitReload(t, reloads)
	cert := readCert(t, h.certPath())
	if cert.Serial == old.Serial || cert.ValidBefore < old.ValidBefore || !bytes.Equal(cert.Key.Marshal(), old.Key.Marshal()) ||
		strings.Join(cert.ValidPrincipals, ",") != strings.Join(old.ValidPrincipals, ",") {
		t.Errorf("renewed certificate serial %d principals %v valid before %d; was %d %v %d: want a new serial for the same key and names, valid as long at least",
			cert.Serial, cert.ValidPrincipals, cert.ValidBefore, old.Serial, old.ValidPrincipals, old.ValidBefore)
	}
	if r := f.asAlice(t, "ssh", f.login+"@db1", "--", "echo after-renew"); r.Code != 0 || !strings.Contains(r.Stdout, "after-renew") {
		t.Errorf("session after renewal: %v", r)
	}
	if _, ok := findEvent(auditList(t, f.auditor), "host_cert.renewed", func(ev auditEvent) bool { return ev.Host == "db1" }); !ok {
		t.Errorf("no host_cert.renewed event for db1")
	}
}

func (f *fleet) testRenewUnreachable(t *testing.T) {
	h := f.db1
	f.d.terminate(t)
	before, reloads := testkit.Tree(t, h.root), h.reloads()
	r := f.onHost(t, h, f.renewArgs(t, h)...)
	if r.Code == 0 || r.Stderr == "" {
		t.Fatalf("jit host renew with jitd stopped: %v; want a failure that says why", r)
	}
	h.unchanged(t, before, reloads)
}

func (f *fleet) testStillIn(t *testing.T) {
	if r := f.asAlice(t, "ssh", f.login+"@db1", "--", "echo still-in"); r.Code != 0 || !strings.Contains(r.Stdout, "still-in") {
		t.Errorf("session after a failed renewal: %v", r)
	}
}

func (f *fleet) testRemove(t *testing.T) {
	h := f.db1
	live := f.startAlice(t, "ssh", f.login+"@db1", "--", "echo live-begin; sleep 60; echo live-end")
	testkit.WaitFor(t, 15*time.Second, "the live session", func() bool {
		return strings.Contains(live.stdout.String(), "live-begin") || live.exited()
	})
	mustRun(t, f.admin, "admin", "host", "remove", "db1", "--reason", "decommissioned by the fleet test")
	r := live.wait(t, 20*time.Second)
	if r.Code == 0 || strings.Contains(r.Stdout, "live-end") {
		t.Errorf("live session on the removed host: %v; want it ended", r)
	}
	if _, ok := findEvent(auditList(t, f.auditor), "host.removed", func(ev auditEvent) bool { return ev.Host == "db1" }); !ok {
		t.Errorf("no host.removed event for db1")
	}
	kh := f.knownHosts(t)
	hostKey, err := os.ReadFile(filepath.Join(h.root, "etc", "ssh", "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	k, _, _, _, err := ssh.ParseAuthorizedKey(hostKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"@cert-authority * " + authorized(caKeys(t, f.d).Host.PublicKey()), "@revoked * " + authorized(k)} {
		if !strings.Contains(kh, want) {
			t.Errorf("known_hosts lacks %q:\n%s", want, kh)
		}
	}
	if r := f.asAlice(t, "hosts", "--format", "json"); strings.Contains(r.Stdout, `"db1"`) {
		t.Errorf("jit hosts still lists the removed db1: %v", r)
	}
	if r := f.asAlice(t, "ssh", f.login+"@db1", "--reason", "after the host is gone", "--", "echo removed-host"); r.Code == 0 {
		t.Errorf("jit ssh to the removed db1: %v; want a refusal", r)
	}
}

func (f *fleet) testSSHDCheckFails(t *testing.T) {
	h := f.newHost(t, "db3")
	// sshd -t fails on this line, and only once join has run it: sshd
	// started before the line was there.
	broken := filepath.Join(h.root, "etc", "ssh", "sshd_config.d", "10-broken.conf")
	if err := os.WriteFile(broken, []byte("NoSuchKeyword yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	token := f.token(t, h)
	before, reloads := testkit.Tree(t, h.root), h.reloads()
	r := f.join(t, h, token)
	if r.Code == 0 || !strings.Contains(r.Stderr, "sshd") {
		t.Fatalf("jit host join with a broken sshd_config: %v; want a failure naming sshd -t", r)
	}
	h.unchanged(t, before, reloads)
}
