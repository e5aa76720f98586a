package ca

import (
	"bytes"
	"crypto/ed25519"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

// seededSigner is an ed25519 signer derived from a fixed seed byte, so the
// golden output does not change from run to run.
func seededSigner(t testing.TB, b byte) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{b}, ed25519.SeedSize)))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// keygenList runs `ssh-keygen -L` on cert in a fresh directory, in UTC.
func keygenList(t *testing.T, cert *ssh.Certificate) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "user-cert.pub"), FormatCert(cert), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sshdtest.Path("ssh-keygen"), "-L", "-f", "user-cert.pub")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	return string(out)
}

// TestSSHKeygenListGolden checks a certificate with every field set against
// what OpenSSH's own ssh-keygen makes of it.
func TestSSHKeygenListGolden(t *testing.T) {
	sshdtest.Require(t, "ssh-keygen")
	spec := UserCertSpec{
		Key:        seededSigner(t, 2).PublicKey(),
		Serial:     0x1234567890abcdef & (1<<63 - 1),
		KeyID:      "alice@example.com req=r-42 role=dba",
		Principals: []string{"postgres@db1", "root@db1"},
		ValidAfter: time.Date(2026, 3, 1, 11, 59, 0, 0, time.UTC),
		// The ten-minute default TTL plus the one-minute backdate.
		ValidBefore: time.Date(2026, 3, 1, 12, 10, 0, 0, time.UTC),
		Extensions:  map[string]string{ExtPermitPTY: "", ExtPermitPortForwarding: ""},
		CriticalOptions: map[string]string{
			OptForceCommand:  "/usr/local/bin/psql-only",
			OptSourceAddress: "10.0.0.0/8,192.0.2.0/24",
		},
	}
	cert, err := SignUserCert(seededSigner(t, 1), spec)
	if err != nil {
		t.Fatal(err)
	}
	got := keygenList(t, cert)
	golden := filepath.Join("testdata", "ssh-keygen-L.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./ca -run Golden -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("ssh-keygen -L output differs from %s (regenerate with -update if intended)\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}

// TestSSHKeygenReadsEveryCAType has ssh-keygen read certificates signed by
// every CA algorithm, and shows that RSA CAs sign with rsa-sha2-512.
func TestSSHKeygenReadsEveryCAType(t *testing.T) {
	sshdtest.Require(t, "ssh-keygen")
	tests := []struct {
		name string
		alg  Algorithm
		want string
	}{
		{name: "ed25519", alg: Ed25519, want: "Signing CA: ED25519 SHA256:"},
		{name: "ecdsa p256", alg: ECDSAP256, want: "Signing CA: ECDSA SHA256:"},
		{name: "ecdsa p384", alg: ECDSAP384, want: "Signing CA: ECDSA SHA256:"},
		{name: "rsa 3072", alg: RSA3072, want: "(using rsa-sha2-512)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			keys, _, err := InitKeys(t.TempDir(), tt.alg)
			if err != nil {
				t.Fatal(err)
			}
			cert, err := SignUserCert(keys.Target, validSpec(seededSigner(t, 3).PublicKey()))
			if err != nil {
				t.Fatal(err)
			}
			out := keygenList(t, cert)
			for _, want := range []string{tt.want, Fingerprint(keys.Target.PublicKey()), "root@db1", "Serial: 7"} {
				if !strings.Contains(out, want) {
					t.Errorf("ssh-keygen -L lacks %q:\n%s", want, out)
				}
			}
		})
	}
}
