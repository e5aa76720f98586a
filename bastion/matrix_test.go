package bastion

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/internal/sshdtest"
)

// TestCertificateMatrixMatchesOpenSSH runs OpenSSH's own certificate cases
// (regress/cert-userkey.sh) against the bastion and against a stock sshd
// that trusts the same user CA with AuthorizedPrincipalsFile LOGIN@db1, and
// expects the same verdict from both: the bastion is no laxer and no
// stricter than OpenSSH about engineers' certificates.
func TestCertificateMatrixMatchesOpenSSH(t *testing.T) {
	e := newEnv(t, envOptions{})
	otherCA := testkit.Signer(t)
	krlPath := filepath.Join(e.dir, "revoked.krl")
	reference := sshdtest.Start(t, sshdtest.Config{
		TrustedUserCAKeys: []ssh.PublicKey{e.userCA.PublicKey()},
		Principals:        []string{e.login + "@db1"},
		RevokedKeys:       krlPath,
	})
	db1 := e.login + "@db1"
	valid := 5 * time.Minute
	// rewrite edits a signed certificate into one ca.SignUserCert refuses to
	// make and signs it again with the user CA.
	rewrite := func(edit func(c *ssh.Certificate)) func(*testing.T, *ssh.Certificate) *ssh.Certificate {
		return func(t *testing.T, c *ssh.Certificate) *ssh.Certificate {
			n := *c
			n.Permissions = ssh.Permissions{CriticalOptions: map[string]string{}, Extensions: map[string]string{}}
			for k, v := range c.CriticalOptions {
				n.CriticalOptions[k] = v
			}
			for k, v := range c.Extensions {
				n.Extensions[k] = v
			}
			edit(&n)
			// By hand, as x/crypto's SignCert itself refuses some of these.
			return signChained(t, &n, e.userCA)
		}
	}
	tests := []struct {
		name    string
		spec    certSpec
		rewrite func(*testing.T, *ssh.Certificate) *ssh.Certificate
		want    bool   // accepted
		wantOut string // what the command printed, when accepted
	}{
		{name: "right principal", spec: certSpec{principal: db1, validFor: valid}, want: true, wantOut: "matrix-ok"},
		{name: "other host's principal", spec: certSpec{principal: e.login + "@db2", validFor: valid}},
		{name: "expired", spec: certSpec{principal: db1, validAfter: time.Now().Add(-time.Hour), validFor: -time.Minute}},
		{name: "not yet valid", spec: certSpec{principal: db1, validAfter: time.Now().Add(time.Hour), validFor: 2 * time.Hour}},
		{name: "untrusted CA", spec: certSpec{principal: db1, validFor: valid, signer: otherCA}},
		{name: "source-address matches", spec: certSpec{principal: db1, validFor: valid},
			rewrite: rewrite(func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "127.0.0.0/8" }), want: true, wantOut: "matrix-ok"},
		{name: "source-address elsewhere", spec: certSpec{principal: db1, validFor: valid},
			rewrite: rewrite(func(c *ssh.Certificate) { c.CriticalOptions["source-address"] = "10.9.0.0/16" })},
		{name: "force-command replaces the command", spec: certSpec{principal: db1, validFor: valid},
			rewrite: rewrite(func(c *ssh.Certificate) { c.CriticalOptions["force-command"] = "echo forced-by-cert" }), want: true, wantOut: "forced-by-cert"},
		{name: "unknown critical option", spec: certSpec{principal: db1, validFor: valid},
			rewrite: rewrite(func(c *ssh.Certificate) { c.CriticalOptions["no-such-option@example.com"] = "" })},
		{name: "no principals", spec: certSpec{principal: db1, validFor: valid},
			rewrite: rewrite(func(c *ssh.Certificate) { c.ValidPrincipals = nil })},
		{name: "principal with a wildcard", spec: certSpec{principal: db1, validFor: valid},
			rewrite: rewrite(func(c *ssh.Certificate) { c.ValidPrincipals = []string{e.login + "@*"} })},
		{name: "revoked serial", spec: certSpec{principal: db1, validFor: valid, revoked: true}},
	}
	type prepared struct {
		keyPath string
		serial  uint64
	}
	certs := make([]prepared, len(tests))
	var revoked []uint64
	for i, tc := range tests {
		tc.spec.name = "m" + strconv.Itoa(i)
		tc.spec.register = true // the bastion's store knows every serial; revocation is the KRL case
		keyPath, _, c := e.userCert(t, tc.spec)
		if tc.rewrite != nil {
			c = tc.rewrite(t, c)
			sshdtest.WriteCert(t, keyPath, c)
		}
		certs[i] = prepared{keyPath: keyPath, serial: c.Serial}
		if tc.spec.revoked {
			revoked = append(revoked, c.Serial)
		}
	}
	krl, err := ca.KRL(e.userCA.PublicKey(), revoked, 1, time.Now(), "matrix")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(krlPath, krl, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			verdicts := map[string]bool{}
			outputs := map[string]string{}
			for _, door := range []string{"bastion", "sshd"} {
				var stdout, stderr string
				var code int
				if door == "bastion" {
					stdout, stderr, code = run(t, e.ssh(certs[i].keyPath, db1, "echo matrix-ok"), "")
				} else {
					stdout, stderr, code = run(t, sshdtest.SSHCommand(t, reference, certs[i].keyPath, "echo matrix-ok"), "")
				}
				verdicts[door] = code == 0
				outputs[door] = strings.TrimSpace(stdout)
				if code != 0 && !strings.Contains(stderr, "Permission denied") {
					t.Logf("%s: exit %d: %s", door, code, stderr)
				}
			}
			if verdicts["bastion"] != tc.want || verdicts["sshd"] != tc.want {
				t.Fatalf("accepted: bastion %v, sshd %v; want both %v\nsshd log:\n%s", verdicts["bastion"], verdicts["sshd"], tc.want, reference.Log())
			}
			if tc.want && (outputs["bastion"] != tc.wantOut || outputs["sshd"] != tc.wantOut) {
				t.Fatalf("output: bastion %q, sshd %q; want both %q", outputs["bastion"], outputs["sshd"], tc.wantOut)
			}
		})
	}
}
