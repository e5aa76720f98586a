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

// TestKRLAgreesWithSSHKeygen asks OpenSSH's own KRL reader (ssh-keygen -Q)
// about certificates against a list built by KRL: revoked exactly when the
// serial is listed and the certificate comes from the listed CA.
func TestKRLAgreesWithSSHKeygen(t *testing.T) {
	sshdtest.Require(t, "ssh-keygen")
	dir := t.TempDir()
	keys, _, err := InitKeys(filepath.Join(dir, "ca"), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := InitKeys(filepath.Join(dir, "other"), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	krl, err := KRL(keys.User.PublicKey(), []uint64{7777, 200, 200, 1 << 63}, 3, now, "jitssh test")
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
		{name: "listed serial", ca: keys.User, serial: 200, wantRevoked: true},
		{name: "another listed serial", ca: keys.User, serial: 7777, wantRevoked: true},
		{name: "top bit serial", ca: keys.User, serial: 1 << 63, wantRevoked: true},
		{name: "unlisted serial", ca: keys.User, serial: 201, wantRevoked: false},
		{name: "listed serial from another CA", ca: other.User, serial: 200, wantRevoked: false},
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

func TestKRLRefusesSerialZero(t *testing.T) {
	keys, _, err := InitKeys(t.TempDir(), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := KRL(keys.User.PublicKey(), []uint64{5, 0}, 1, time.Now(), ""); err == nil || !strings.Contains(err.Error(), "serial 0") {
		t.Fatalf("KRL with serial 0: err = %v", err)
	}
	if _, err := KRL(nil, nil, 1, time.Now(), ""); err == nil {
		t.Fatal("KRL without a CA key succeeded")
	}
}
