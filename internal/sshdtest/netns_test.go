package sshdtest

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/netnstest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestInNamespace runs sshd inside a test host and logs in from the root
// namespace: the connection comes from the host's HostAddr to its Addr:22,
// so a certificate's source-address is checked against a real address.
func TestInNamespace(t *testing.T) {
	Require(t, "sshd", "ssh")
	h := netnstest.New(t, "db1")
	userCA, hostCA := testkit.Signer(t), testkit.Signer(t)
	login := LocalUser(t)
	srv := Start(t, Config{
		Wrap: h.Argv, ListenHost: h.Addr.String(),
		TrustedUserCAKeys: []ssh.PublicKey{userCA.PublicKey()},
		Principals:        []string{login + "@db1"},
		HostCA:            hostCA, HostName: "db1",
	})
	if srv.Addr != h.Addr.String()+":22" || srv.KnownHostsPattern() != h.Addr.String() {
		t.Fatalf("server at %s (known_hosts %s), want %s:22", srv.Addr, srv.KnownHostsPattern(), h.Addr)
	}
	tests := []struct {
		name      string
		source    string // source-address critical option; "" for none
		wantOK    bool
		wantInLog string // in sshd's log
	}{
		{name: "no source-address", wantOK: true},
		{name: "source-address of the root side", source: h.HostAddr.String() + "/32", wantOK: true},
		{name: "source-address of another address", source: h.Addr.String() + "/32", wantOK: false, wantInLog: "not from a permitted source address"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyPath, signer := NewUserKey(t, t.TempDir(), "id")
			cert := userCert(t, userCA, signer.PublicKey(), "ns-case-"+string(rune('a'+i)), login+"@db1")
			if tt.source != "" {
				cert.CriticalOptions = map[string]string{"source-address": tt.source}
				if err := cert.SignCert(rand.Reader, userCA); err != nil {
					t.Fatal(err)
				}
			}
			WriteCert(t, keyPath, cert)
			out, err := SSHCommand(t, srv, keyPath, "echo $SSH_CONNECTION").CombinedOutput()
			if !tt.wantOK {
				if err == nil {
					t.Fatalf("ssh succeeded, want refusal; output %q", out)
				}
				if !srv.WaitLog(tt.wantInLog, 5*time.Second) {
					t.Fatalf("sshd log lacks %q:\n%s", tt.wantInLog, srv.Log())
				}
				return
			}
			f := strings.Fields(string(out))
			if err != nil || len(f) != 4 || f[0] != h.HostAddr.String() || f[2] != h.Addr.String() || f[3] != "22" {
				t.Fatalf("ssh: %v, SSH_CONNECTION %q, want from %s to %s 22\nsshd log:\n%s", err, out, h.HostAddr, h.Addr, srv.Log())
			}
		})
	}
}

// TestRootLayout starts a stock host under a root directory: it trusts
// nobody until a drop-in in ROOT/etc/ssh/sshd_config.d says whom.
func TestRootLayout(t *testing.T) {
	Require(t, "sshd", "ssh")
	userCA := testkit.Signer(t)
	login := LocalUser(t)
	root := t.TempDir()
	srv := Start(t, Config{Root: root})
	if srv.Config != filepath.Join(root, "etc", "ssh", "sshd_config") {
		t.Fatalf("config at %s, want under %s", srv.Config, root)
	}
	b, err := os.ReadFile(filepath.Join(root, "run", "sshd.pid"))
	if err != nil || strings.TrimSpace(string(b)) == "" {
		t.Fatalf("pid file: %v %q", err, b)
	}
	keyPath, signer := NewUserKey(t, t.TempDir(), "id")
	WriteCert(t, keyPath, userCert(t, userCA, signer.PublicKey(), "root-layout", login+"@db1"))

	ca := filepath.Join(root, "ca.pub")
	if err := os.WriteFile(ca, ssh.MarshalAuthorizedKey(userCA.PublicKey()), 0o644); err != nil {
		t.Fatal(err)
	}
	principalsFile := filepath.Join(root, "principals")
	if err := os.WriteFile(principalsFile, []byte(login+"@db1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := "#!/bin/sh\necho \"$1@db1\"\n"
	safe := filepath.Join(CommandDir(t), "principals")
	unsafe := filepath.Join(t.TempDir(), "principals")
	// Traversable by nobody, so that what refuses it is /tmp's mode.
	for _, d := range []string{filepath.Dir(unsafe), filepath.Dir(filepath.Dir(unsafe))} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{safe, unsafe} {
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	command := func(path string) string {
		return "TrustedUserCAKeys " + ca + "\nAuthorizedPrincipalsCommand " + path + " %u\nAuthorizedPrincipalsCommandUser nobody\n"
	}
	tests := []struct {
		name      string
		dropIn    string // "" for none
		wantOK    bool
		wantInLog string
	}{
		{name: "no drop-in trusts nobody", wantOK: false},
		{name: "a drop-in with a principals file", dropIn: "TrustedUserCAKeys " + ca + "\nAuthorizedPrincipalsFile " + principalsFile + "\n", wantOK: true},
		{name: "a principals command in CommandDir", dropIn: command(safe), wantOK: true},
		{name: "a principals command under /tmp", dropIn: command(unsafe), wantOK: false, wantInLog: "Unsafe AuthorizedPrincipalsCommand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.dropIn != "" {
				reload(t, srv, filepath.Join(root, "etc", "ssh", "sshd_config.d", "50-test.conf"), tt.dropIn)
			}
			out, err := SSHCommand(t, srv, keyPath, "echo", "in").CombinedOutput()
			if got := err == nil && strings.TrimSpace(string(out)) == "in"; got != tt.wantOK {
				t.Fatalf("ssh: %v %q, want ok=%v\nsshd log:\n%s", err, out, tt.wantOK, srv.Log())
			}
			if tt.wantInLog != "" && !srv.WaitLog(tt.wantInLog, 5*time.Second) {
				t.Fatalf("sshd log lacks %q:\n%s", tt.wantInLog, srv.Log())
			}
		})
	}
}

// reload writes the drop-in and sends sshd SIGHUP: it reads its
// configuration only when it starts or re-executes itself on SIGHUP.
func reload(t *testing.T, srv *Server, dropIn, text string) {
	t.Helper()
	if err := os.WriteFile(dropIn, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	before := strings.Count(srv.Log(), "Server listening on")
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, 10*time.Second, "sshd to re-read its configuration", func() bool {
		return strings.Count(srv.Log(), "Server listening on") > before
	})
	if err := srv.WaitAccepting(10 * time.Second); err != nil {
		t.Fatal(err)
	}
}
