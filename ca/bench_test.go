package ca

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// BenchmarkSignUserCert signs ed25519 user certificates with an ed25519 CA
// from all GOMAXPROCS goroutines, validation and verification included.
func BenchmarkSignUserCert(b *testing.B) {
	ca := seededSigner(b, 1)
	key := seededSigner(b, 2).PublicKey()
	now := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serial, err := NewSerial(nil)
			if err != nil {
				b.Error(err)
				return
			}
			if _, err := SignUserCert(ca, UserCertSpec{
				Key: key, Serial: serial, KeyID: "bench", Principals: []string{"root@db1"},
				ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(10 * time.Minute),
				Extensions: map[string]string{ExtPermitPTY: ""},
			}); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkSSHKeygenSign runs `ssh-keygen -s` as a process per certificate,
// the baseline of shelling out to OpenSSH, for comparison.
func BenchmarkSSHKeygenSign(b *testing.B) {
	sshdtest.Require(b, "ssh-keygen")
	dir := b.TempDir()
	_, _, err := InitKeys(filepath.Join(dir, "ca"), Ed25519)
	if err != nil {
		b.Fatal(err)
	}
	userPub := filepath.Join(dir, "id_ed25519.pub")
	if err := os.WriteFile(userPub, []byte(PublicKeyLine(seededSigner(b, 2).PublicKey(), "bench")+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	keygen := sshdtest.Path("ssh-keygen")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmd := exec.Command(keygen, "-q", "-s", filepath.Join(dir, "ca", "user_ca"), "-I", "bench",
			"-n", "root@db1", "-V", "-1m:+10m", "-z", "1", "-O", "clear", "-O", "permit-pty", userPub)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ssh-keygen -s: %v\n%s", err, out)
		}
	}
}
