package sshdtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/netnstest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestInPrivateRoot runs sshd inside a private root and logs in as a user
// that exists only there: sshd reads the private /etc/passwd and /home, as
// an ephemeral account's login does. The password field is "*" (no
// password, not locked: sshd without PAM refuses a locked account).
func TestInPrivateRoot(t *testing.T) {
	Require(t, "sshd", "ssh")
	h := netnstest.New(t, "acct1")
	p := h.PrivateRoot(t)
	p.Run(t, "useradd", "-l", "-m", "-p", "*", "-u", "61998", "-s", "/bin/sh", "jit-sshdtest")
	userCA := testkit.Signer(t)
	srv := Start(t, Config{
		Wrap: p.Argv, ListenHost: h.Addr.String(),
		TrustedUserCAKeys: []ssh.PublicKey{userCA.PublicKey()},
		Principals:        []string{"jit-sshdtest@acct1"},
	})
	srv.Login = "jit-sshdtest"
	// sshd opens the principals file as the user: let it traverse the
	// test's directories (t.TempDir makes them 0700).
	for _, d := range []string{srv.Dir, filepath.Dir(srv.Dir)} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	keyPath, signer := NewUserKey(t, t.TempDir(), "id")
	WriteCert(t, keyPath, userCert(t, userCA, signer.PublicKey(), "private-root", "jit-sshdtest@acct1"))
	out, err := SSHCommand(t, srv, keyPath, "id -u; pwd; touch ~/left").CombinedOutput()
	if err != nil || strings.Fields(string(out))[0] != "61998" || !strings.Contains(string(out), "/home/jit-sshdtest") {
		t.Fatalf("ssh as jit-sshdtest: %v: %q\nsshd log:\n%s", err, out, srv.Log())
	}
	if got := p.Run(t, "stat", "-c", "%u", "/home/jit-sshdtest/left"); strings.TrimSpace(got) != "61998" {
		t.Fatalf("file left by the login is owned by %q", got)
	}
}
