package ca

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// TestKRLOfSectionPerCA asks ssh-keygen -Q about a list with a section for
// the user CA and one for the target CA: a serial is revoked only for the
// CA whose section lists it.
func TestKRLOfSectionPerCA(t *testing.T) {
	sshdtest.Require(t, "ssh-keygen")
	dir := t.TempDir()
	keys, _, err := InitKeys(filepath.Join(dir, "ca"), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	krl, err := KRLOf([]KRLSection{
		{CA: keys.User.PublicKey(), Serials: []uint64{200}},
		{CA: keys.Host.PublicKey()}, // empty: left out
		{CA: keys.Target.PublicKey(), Serials: []uint64{300, 1 << 63}},
	}, 1, now, "two CAs")
	if err != nil {
		t.Fatal(err)
	}
	krlPath := filepath.Join(dir, "revoked.krl")
	if err := os.WriteFile(krlPath, krl, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		ca          ssh.Signer
		serial      uint64
		wantRevoked bool
	}{
		{name: "user CA listed", ca: keys.User, serial: 200, wantRevoked: true},
		{name: "user CA, target's serial", ca: keys.User, serial: 300},
		{name: "target CA listed", ca: keys.Target, serial: 300, wantRevoked: true},
		{name: "target CA top bit", ca: keys.Target, serial: 1 << 63, wantRevoked: true},
		{name: "target CA, user's serial", ca: keys.Target, serial: 200},
		{name: "host CA", ca: keys.Host, serial: 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, signer := sshdtest.NewUserKey(t, t.TempDir(), "id")
			cert, err := SignUserCert(tt.ca, UserCertSpec{
				Key: signer.PublicKey(), Serial: tt.serial, KeyID: "krl", Principals: []string{"root@db1"},
				ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(time.Hour),
			})
			if err != nil {
				t.Fatal(err)
			}
			certPath := filepath.Join(t.TempDir(), "id-cert.pub")
			if err := os.WriteFile(certPath, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sshdtest.Path("ssh-keygen"), "-Q", "-f", krlPath, certPath).CombinedOutput()
			revoked := strings.Contains(string(out), "REVOKED")
			if revoked != tt.wantRevoked || (err != nil) != tt.wantRevoked {
				t.Fatalf("ssh-keygen -Q: revoked=%v err=%v, want revoked=%v\n%s", revoked, err, tt.wantRevoked, out)
			}
		})
	}
}
