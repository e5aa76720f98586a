package e2e

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestKRLRevokesTargetCertificates revokes an engineer's certificate after
// a session through the bastion and checks the KRL that `jit krl` writes:
// ssh-keygen -Q finds the engineer's certificate and the session's target
// certificate revoked, and a real sshd that trusts the target CA with the
// KRL as RevokedKeys (what docs/trust-model.md tells targets to install)
// refuses a target-CA certificate with the session's serial, and still
// accepts another. The certificate with the session's serial is made here
// with the target CA key (the bastion's own never leaves it): to sshd and
// ssh-keygen a KRL entry is a CA key and a serial.
func TestKRLRevokesTargetCertificates(t *testing.T) {
	t.Parallel()
	sshdtest.Require(t, "ssh-keygen")
	w := newSecWorld(t)
	alice, login := w.alice, w.login
	if r := start(t, alice, "ssh", login+"@db1", "--reason", "check the disk space", "--", "true").wait(t, commandTimeout); r.Code != 0 {
		t.Fatalf("jit ssh through the bastion: %v", r)
	}
	var targetSerial uint64
	testkit.WaitFor(t, sessionWait, "the session's target serial in jit sessions list", func() bool {
		for _, s := range secSessions(t, w.auditor) {
			targetSerial = s.TargetSerial
		}
		return targetSerial != 0
	})
	userCertFile := filepath.Join(alice.Home, "state", "keys", login+"@db1-cert.pub")
	userSerial := readCert(t, userCertFile).Serial

	keys, err := ca.LoadKeys(filepath.Join(w.d.Data, "ca"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	krl := filepath.Join(dir, "revoked.krl")
	mustRun(t, alice, "krl", "-o", krl)
	target := sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: []ssh.PublicKey{keys.Target.PublicKey()},
		Principals:        []string{login + "@db1"},
		RevokedKeys:       krl,
	})
	leaked := targetCert(t, keys.Target, dir, "leaked", targetSerial, login+"@db1")
	other := targetCert(t, keys.Target, dir, "other", targetSerial+1, login+"@db1")
	if out, err := sshTrue(t, target, leaked); err != nil {
		t.Fatalf("before revocation the target refused the session's serial: %v\n%s", err, out)
	}

	mustRun(t, w.admin, "admin", "revoke", strconv.FormatUint(userSerial, 10), "--reason", "laptop stolen")
	mustRun(t, alice, "krl", "-o", krl)

	for _, tc := range []struct {
		name, cert  string
		wantRevoked bool
	}{
		{name: "engineer's certificate", cert: userCertFile, wantRevoked: true},
		{name: "session's target certificate", cert: leaked + "-cert.pub", wantRevoked: true},
		{name: "another target serial", cert: other + "-cert.pub"},
	} {
		out, err := exec.Command(sshdtest.Path("ssh-keygen"), "-Q", "-f", krl, tc.cert).CombinedOutput()
		if revoked := strings.Contains(string(out), "REVOKED"); revoked != tc.wantRevoked || (err != nil) != tc.wantRevoked {
			t.Errorf("ssh-keygen -Q %s: revoked=%v err=%v, want revoked=%v\n%s", tc.name, revoked, err, tc.wantRevoked, out)
		}
	}
	if out, err := sshTrue(t, target, leaked); err == nil {
		t.Errorf("the target with the KRL accepted a target certificate with revoked serial %d:\n%s", targetSerial, out)
	}
	if out, err := sshTrue(t, target, other); err != nil {
		t.Errorf("the target with the KRL refused an unrevoked target certificate: %v\n%s", err, out)
	}
	evs := auditList(t, w.auditor, "--event", "cert.revoked")
	if _, ok := findEvent(evs, "cert.revoked", func(ev auditEvent) bool {
		return ev.Serial == strconv.FormatUint(targetSerial, 10) && ev.Data["user_serial"] == strconv.FormatUint(userSerial, 10)
	}); !ok {
		t.Errorf("no cert.revoked event for target serial %d naming user serial %d: %+v", targetSerial, userSerial, evs)
	}
}

// targetCert makes a key in dir and a target-CA certificate for it with
// serial, as the bastion's would be, and returns the key's path.
func targetCert(t *testing.T, signer ssh.Signer, dir, name string, serial uint64, principal string) string {
	t.Helper()
	path, key := sshdtest.NewUserKey(t, dir, name)
	now := time.Now()
	cert, err := ca.SignUserCert(signer, ca.UserCertSpec{
		Key: key.PublicKey(), Serial: serial, KeyID: "e2e:" + name, Principals: []string{principal},
		ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	sshdtest.WriteCert(t, path, cert)
	return path
}
