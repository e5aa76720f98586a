package e2e

import (
	"crypto/rand"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/netnstest"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// provisionTarget is a stock sshd in a private root (its own /etc, /home,
// /usr/local) on a host of its own, set up as jit host join leaves a
// target for ephemeral accounts: the helper's wrapper at
// api.AccountHelperPath running this jit, and `jit host principals` as
// the AuthorizedPrincipalsCommand (run as nobody), for host db1 with the
// login root granted by policy.
type provisionTarget struct {
	ns       *netnstest.Host
	p        *netnstest.PrivateRoot
	sshd     *sshdtest.Server
	targetCA ssh.Signer
}

func newProvisionTarget(t *testing.T) *provisionTarget {
	t.Helper()
	sshdtest.Require(t, "sshd", "ssh")
	netnstest.RequirePrivateRoot(t)
	// sshd runs commands only from root-owned paths nobody else may write.
	jit := filepath.Join(sshdtest.CommandDir(t), "jit")
	b, err := os.ReadFile(bin(t, "jit"))
	if err != nil || os.WriteFile(jit, b, 0o755) != nil {
		t.Fatalf("copy jit to %s: %v", jit, err)
	}
	ns := netnstest.New(t, "db1")
	tg := &provisionTarget{ns: ns, p: ns.PrivateRoot(t), targetCA: testkit.Signer(t)}
	files := map[string]string{
		"/etc/ssh/jitssh/host":   "db1\n",
		"/etc/ssh/jitssh/logins": "root\n",
		api.AccountHelperPath:    "#!/bin/sh\nexec " + jit + " host account\n",
	}
	for path, content := range files {
		full := tg.p.Path(path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil || os.WriteFile(full, []byte(content), 0o755) != nil {
			t.Fatalf("write %s in the private root: %v", path, err)
		}
	}
	tg.sshd = sshdtest.Start(t, sshdtest.Config{
		Wrap: tg.p.Argv, ListenHost: ns.Addr.String(),
		TrustedUserCAKeys: []ssh.PublicKey{tg.targetCA.PublicKey()},
		Extra: []string{
			"AuthorizedPrincipalsCommand " + jit + " host principals %u",
			"AuthorizedPrincipalsCommandUser nobody",
		},
	})
	// sshd opens the principals file (empty here) as the user logging in.
	for _, d := range []string{tg.sshd.Dir, filepath.Dir(tg.sshd.Dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return tg
}

// cert writes a key and a target-CA certificate for principal with the
// given critical options and extensions, and returns the key's path.
func (tg *provisionTarget) cert(t *testing.T, principal string, critical, ext map[string]string) string {
	t.Helper()
	keyPath, signer := sshdtest.NewUserKey(t, t.TempDir(), "id")
	now := time.Now()
	c := &ssh.Certificate{
		Key: signer.PublicKey(), Serial: 7, CertType: ssh.UserCert, KeyId: "jit:provision-test",
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(now.Add(-10 * time.Second).Unix()),
		ValidBefore:     uint64(now.Add(api.ProvisionCertLifetime).Unix()),
		Permissions:     ssh.Permissions{CriticalOptions: critical, Extensions: ext},
	}
	if err := c.SignCert(rand.Reader, tg.targetCA); err != nil {
		t.Fatal(err)
	}
	sshdtest.WriteCert(t, keyPath, c)
	return keyPath
}

// ssh runs ssh as login to the target with the key and stdin, and returns
// stdout, stderr and the exit code.
func (tg *provisionTarget) ssh(t *testing.T, login, keyPath, stdin string, args ...string) (string, string, int) {
	t.Helper()
	tg.sshd.Login = login
	cmd := sshdtest.SSHCommand(t, tg.sshd, keyPath, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = cmd.ProcessState.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

// TestProvisioningLogin: the provisioning certificate (principal
// jitssh-provision@db1, force-command the helper, source-address the
// bastion's side, no extensions) logs in as root and runs the helper over
// real sshd: create makes the account, which then logs in with its own
// certificate and uses its sudo rule. The same certificate gets no shell,
// no pty, no forwarding and no other operation; a certificate for the
// principal without force-command still gets only the helper (the
// principals line's command=); an engineer's root@db1 gets a normal login,
// never the helper.
func TestProvisioningLogin(t *testing.T) {
	tg := newProvisionTarget(t)
	provision := map[string]string{"force-command": api.AccountHelperPath, "source-address": tg.ns.HostAddr.String() + "/32"}
	key := tg.cert(t, api.ProvisionPrincipalLogin+"@db1", provision, nil)
	create := `{"login":"jit-alice-4f2k","grant":"req_e2e","uid_min":61000,"uid_max":64999,"shell":"/bin/bash","sudo":["/usr/bin/id -u"]}`

	out, errOut, code := tg.ssh(t, "root", key, create, "create")
	var ans api.AccountAnswer
	if err := json.Unmarshal([]byte(out), &ans); err != nil || code != 0 || !ans.OK || len(ans.Accounts) != 1 || ans.Accounts[0].UID != 61000 {
		t.Fatalf("ssh create: exit %d, answer %q (%v), stderr %q\nsshd log:\n%s", code, out, err, errOut, tg.sshd.Log())
	}
	t.Run("the account logs in and uses its sudo rule", func(t *testing.T) {
		userKey := tg.cert(t, "jit-alice-4f2k@db1", nil, map[string]string{"permit-pty": ""})
		out, errOut, code := tg.ssh(t, "jit-alice-4f2k", userKey, "", "id -u; sudo -n /usr/bin/id -u; pwd")
		if code != 0 || out != "61000\n0\n/home/jit-alice-4f2k\n" {
			t.Fatalf("ssh as jit-alice-4f2k: exit %d, %q, %q\nsshd log:\n%s", code, out, errOut, tg.sshd.Log())
		}
	})
	t.Run("a jit- user the helper did not make gets no principal", func(t *testing.T) {
		tg.p.Run(t, "useradd", "-l", "-m", "-p", "*", "jit-standing")
		key := tg.cert(t, "jit-standing@db1", nil, nil)
		if out, errOut, code := tg.ssh(t, "jit-standing", key, "", "true"); code != 255 || !strings.Contains(errOut, "Permission denied") {
			t.Fatalf("ssh as jit-standing: exit %d, %q, %q", code, out, errOut)
		}
	})
	tests := []struct {
		name     string
		key      string
		login    string
		args     []string
		wantCode int
		want     string // in stdout+stderr
	}{
		{"no shell", key, "root", nil, api.AccountExitUsage, "force-command"},
		{"no other operation", key, "root", []string{"bash -i"}, api.AccountExitUsage, "unknown operation"},
		{"no pty", key, "root", []string{"-tt", "list"}, 255, "PTY allocation request failed"},
		{"no stdio forwarding", key, "root", []string{"-W", "127.0.0.1:22"}, 255, "administratively prohibited"},
		{"no remote forwarding", key, "root", []string{"-o", "ExitOnForwardFailure=yes", "-R", "2222:127.0.0.1:22", "list"}, 255, "remote port forwarding failed"},
		{"no force-command in the certificate: still only the helper", tg.cert(t, api.ProvisionPrincipalLogin+"@db1", nil, map[string]string{"permit-pty": ""}), "root", []string{"id -u"}, api.AccountExitUsage, "unknown operation"},
		{"an engineer's root@db1 is a normal login", tg.cert(t, "root@db1", nil, nil), "root", []string{"echo normal; id -u"}, 0, "normal\n0\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := tg.ssh(t, tt.login, tt.key, "{}", tt.args...)
			if code != tt.wantCode || !strings.Contains(out+errOut, tt.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d with %q\nsshd log:\n%s", code, out, errOut, tt.wantCode, tt.want, tg.sshd.Log())
			}
		})
	}
	t.Run("list over ssh counts nothing running after the login", func(t *testing.T) {
		out, _, code := tg.ssh(t, "root", key, "{}", "list")
		var l api.AccountAnswer
		if err := json.Unmarshal([]byte(out), &l); err != nil || code != 0 || len(l.Accounts) != 1 || l.Accounts[0].Login != "jit-alice-4f2k" || l.Accounts[0].Processes != 0 || l.HighWater != 61000 {
			t.Fatalf("list: exit %d %q %v", code, out, err)
		}
	})
	t.Run("remove over ssh", func(t *testing.T) {
		out, _, code := tg.ssh(t, "root", key, `{"login":"jit-alice-4f2k","grant":"req_e2e","uid":61000}`, "remove")
		if code != 0 || !strings.Contains(out, `"ok":true`) || strings.Contains(tg.p.Run(t, "cat", "/etc/passwd"), "jit-alice-4f2k") {
			t.Fatalf("remove: exit %d %q", code, out)
		}
	})
}
