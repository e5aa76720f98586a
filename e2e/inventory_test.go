package e2e

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// inventoryPolicy lists no hosts: web9 comes from the store, by join.
const inventoryPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  admin: {groups: [admins], keys: [{{index .Key "admin"}}]}
admins: {groups: [admins]}
roles:
  - name: fleet
    groups: [dev]
    hosts: {labels: {env: e2e}}
    logins: [{{.Login}}]
    ttl: 10m
    justification: {min_length: 10}
`

// TestIssue10JoinServerSide is the server side of hosts as data through the
// binaries: an admin makes a join token with jit admin host token, the test
// (standing in for jit host join on the target) joins a real sshd's host
// key with api.Client.JoinHost and starts that sshd with the host
// certificate and target CA it got back, an engineer runs a command through
// the bastion on the host by name, and jit admin host remove ends a live
// session on it within seconds and takes it out of jit admin host list.
func TestIssue10JoinServerSide(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "sshd", "ssh")
	login := sshdtest.LocalUser(t)
	alice, admin := newEngineer(t, "alice"), newEngineer(t, "admin")
	d := initDaemon(t)
	d.serve(t, renderPolicy(t, inventoryPolicy, login, []*engineer{alice, admin}, nil), "--bastion", "127.0.0.1:0")
	d.login(t, alice)
	d.login(t, admin)

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sshdtest.FreePort(t)))
	out := mustRun(t, admin, "admin", "host", "token", "web9", "--address", addr, "--label", "env=e2e", "--ttl", "10m")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[1], "jhj_") {
		t.Fatalf("jit admin host token printed %q; want the token on its second line", out)
	}
	tok := lines[1]
	if want := fmt.Sprintf("  JIT_JOIN_TOKEN=%s jit host join --ca https://%s --fingerprint %s", tok, d.API, d.Fingerprint); lines[3] != want {
		t.Errorf("join line %q, want %q", lines[3], want)
	}

	target, joined := joinTarget(t, d, addr, tok, login)
	if !slices.Equal(joined.Logins, []string{login}) || joined.Bastion != d.Bastion {
		t.Errorf("join answer logins %v bastion %q, want [%s] and %q", joined.Logins, joined.Bastion, login, d.Bastion)
	}
	if r := start(t, alice, "ssh", login+"@web9", "--reason", "check the enrolled host", "--", "echo hello-web9").wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "hello-web9") {
		t.Fatalf("jit ssh to the joined host: %v\nsshd log:\n%s", r, target.Log())
	}
	if hosts := adminHosts(t, admin); len(hosts) != 1 || hosts[0].Name != "web9" || hosts[0].Source != api.HostSourceStore || hosts[0].Address != addr {
		t.Fatalf("jit admin host list: %+v, want web9 from the store at %s", hosts, addr)
	}
	// Its certificate lasts 30 days: due within 31, not within 1.
	if out := mustRun(t, admin, "hosts", "--expiring", "744h"); !strings.Contains(out, "web9") {
		t.Errorf("jit hosts --expiring 744h: %q, want web9", out)
	}
	if out := mustRun(t, admin, "hosts", "--expiring", "24h"); strings.Contains(out, "web9") {
		t.Errorf("jit hosts --expiring 24h: %q, want no web9", out)
	}

	live := start(t, alice, "ssh", login+"@web9", "--reason", "check the enrolled host", "--", "echo live-start; sleep 120")
	testkit.WaitFor(t, commandTimeout, "the live session's first output", func() bool { return strings.Contains(live.stdout.String(), "live-start") })
	if out := mustRun(t, admin, "admin", "host", "remove", "web9", "--reason", "decommissioned"); !strings.Contains(out, "removed web9") {
		t.Errorf("jit admin host remove printed %q", out)
	}
	if r := live.wait(t, 20*time.Second); r.Code == 0 {
		t.Errorf("the live session on the removed host ended with exit 0: %v", r)
	}
	if hosts := adminHosts(t, admin); len(hosts) != 0 {
		t.Errorf("jit admin host list after removal: %+v, want none", hosts)
	}
	if _, stderr, code := run(t, alice, "ssh", login+"@web9", "--reason", "check the enrolled host", "--", "true"); code == 0 {
		t.Errorf("jit ssh to the removed host succeeded; stderr %q", stderr)
	}
}

// joinTarget joins a fresh host key as the token's host and starts a real
// sshd at addr with the host certificate, the target CA and the principal
// LOGIN@web9 that the join answered.
func joinTarget(t *testing.T, d *daemon, addr, tok, login string) (*sshdtest.Server, api.HostJoinResponse) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := api.NewClient("https://"+d.API, d.Fingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	joined, err := cl.JoinHost(ctx, api.HostJoinRequest{Token: tok, HostKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))})
	if err != nil {
		t.Fatalf("join: %v", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(joined.HostCertificate))
	if err != nil {
		t.Fatalf("host certificate %q: %v", joined.HostCertificate, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok || cert.CertType != ssh.HostCert || !slices.Equal(cert.ValidPrincipals, []string{"web9", "127.0.0.1"}) {
		t.Fatalf("host certificate %+v, want a host certificate for web9 and 127.0.0.1", pub)
	}
	targetCA, _, _, _, err := ssh.ParseAuthorizedKey([]byte(joined.TargetCA))
	if err != nil {
		t.Fatalf("target CA %q: %v", joined.TargetCA, err)
	}
	port, _ := strconv.Atoi(addr[strings.LastIndex(addr, ":")+1:])
	return sshdtest.Start(t, sshdtest.Config{
		HostPrivateKey: priv, HostCert: cert, Port: port,
		TrustedUserCAKeys: []ssh.PublicKey{targetCA},
		Principals:        []string{login + "@web9"},
	}), joined
}

// adminHosts runs jit admin host list --format json as e.
func adminHosts(t *testing.T, e *engineer) []api.HostRecord {
	t.Helper()
	var out []api.HostRecord
	for _, line := range strings.Split(strings.TrimSpace(mustRun(t, e, "admin", "host", "list", "--format", "json")), "\n") {
		if line == "" {
			continue
		}
		var h api.HostRecord
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("jit admin host list line %q: %v", line, err)
		}
		out = append(out, h)
	}
	return out
}
