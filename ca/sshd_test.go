package ca

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// sshdVerdict runs the stock ssh client against srv with the key at keyPath
// (and its -cert.pub) and reports whether it logged in and what it printed.
func sshdVerdict(t *testing.T, srv *sshdtest.Server, keyPath string, args ...string) (bool, string) {
	t.Helper()
	out, err := sshdtest.SSHCommand(t, srv, keyPath, args...).CombinedOutput()
	refused := strings.Contains(string(out), "Permission denied")
	// With -tt a refused pty ends the session before the command runs.
	noPTY := strings.Contains(string(out), "PTY allocation request failed")
	if err != nil && !refused && !noPTY {
		t.Fatalf("ssh failed other than by refusal: %v\n%s\nsshd log:\n%s", err, out, srv.Log())
	}
	return !refused, string(out)
}

// TestRealSSHDTrustsSignedCert runs certificates from SignUserCert against a
// real OpenSSH sshd that trusts the user CA, for every CA algorithm.
func TestRealSSHDTrustsSignedCert(t *testing.T) {
	sshdtest.Require(t, "sshd", "ssh")
	login := sshdtest.LocalUser(t)
	for _, alg := range []Algorithm{Ed25519, ECDSAP256, RSA3072} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			keys, _, err := InitKeys(t.TempDir(), alg)
			if err != nil {
				t.Fatal(err)
			}
			db1 := sshdtest.Start(t, sshdtest.Config{TrustedUserCAKeys: []ssh.PublicKey{keys.User.PublicKey()}, Principals: []string{login + "@db1"}})
			db2 := sshdtest.Start(t, sshdtest.Config{TrustedUserCAKeys: []ssh.PublicKey{keys.User.PublicKey()}, Principals: []string{login + "@db2"}})

			keyPath, signer := sshdtest.NewUserKey(t, t.TempDir(), "id_ed25519")
			now := time.Now()
			cert, err := SignUserCert(keys.User, UserCertSpec{
				Key: signer.PublicKey(), Serial: 11, KeyID: "cert-for-db1-" + string(alg),
				Principals: []string{login + "@db1"},
				ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(10 * time.Minute),
				Extensions: map[string]string{ExtPermitPTY: ""},
			})
			if err != nil {
				t.Fatal(err)
			}
			sshdtest.WriteCert(t, keyPath, cert)

			tests := []struct {
				name   string
				srv    *sshdtest.Server
				wantIn bool
			}{
				{name: "db1 lists LOGIN@db1", srv: db1, wantIn: true},
				{name: "db2 lists only LOGIN@db2", srv: db2, wantIn: false},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					in, out := sshdVerdict(t, tt.srv, keyPath, "echo", "logged-in")
					if in != tt.wantIn {
						t.Fatalf("logged in = %v, want %v; output %q\nsshd log:\n%s", in, tt.wantIn, out, tt.srv.Log())
					}
					if in && strings.TrimSpace(out) != "logged-in" {
						t.Fatalf("output %q, want logged-in", out)
					}
					if in && !strings.Contains(tt.srv.Log(), fmt.Sprintf("Accepted certificate ID %q (serial 11)", cert.KeyId)) {
						t.Fatalf("sshd log does not show the certificate:\n%s", tt.srv.Log())
					}
				})
			}
		})
	}
}

// TestRealSSHDCertMatrix is the OpenSSH cert-userkey.sh style matrix: each
// certificate variant against a real sshd trusting the user CA for LOGIN@db1.
func TestRealSSHDCertMatrix(t *testing.T) {
	sshdtest.Require(t, "sshd", "ssh")
	login := sshdtest.LocalUser(t)
	keys, _, err := InitKeys(t.TempDir(), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	srv := sshdtest.Start(t, sshdtest.Config{TrustedUserCAKeys: []ssh.PublicKey{keys.User.PublicKey()}, Principals: []string{login + "@db1"}})
	// The clock the certificates are issued at; sshd reads the real one.
	now := time.Now()
	pty := map[string]string{ExtPermitPTY: ""}

	tests := []struct {
		name          string
		ca            ssh.Signer
		validAfter    time.Time
		validBefore   time.Time
		extensions    map[string]string
		options       map[string]string
		args          []string
		wantIn        bool
		wantOut       string // substring of the client's output when logged in
		wantSSHDLog   string // substring of sshd's log
		wantNotOutput string
	}{
		{name: "valid now", ca: keys.User, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute), extensions: pty,
			args: []string{"echo", "hello"}, wantIn: true, wantOut: "hello"},
		{name: "expired", ca: keys.User, validAfter: now.Add(-20 * time.Minute), validBefore: now.Add(-10 * time.Minute), extensions: pty,
			args: []string{"true"}, wantIn: false, wantSSHDLog: "Certificate invalid: expired"},
		{name: "not yet valid", ca: keys.User, validAfter: now.Add(10 * time.Minute), validBefore: now.Add(20 * time.Minute), extensions: pty,
			args: []string{"true"}, wantIn: false, wantSSHDLog: "Certificate invalid: not yet valid"},
		{name: "signed by the target CA, which this sshd does not trust", ca: keys.Target, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute),
			args: []string{"true"}, wantIn: false},
		{name: "permit-pty gets a pty", ca: keys.User, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute), extensions: pty,
			args: []string{"-tt", "tty"}, wantIn: true, wantOut: "/dev/pts/"},
		{name: "without permit-pty no pty", ca: keys.User, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute), extensions: nil,
			args: []string{"-tt", "tty"}, wantIn: true, wantOut: "PTY allocation request failed", wantNotOutput: "/dev/pts/"},
		{name: "source-address excludes 127.0.0.1", ca: keys.User, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute),
			options: map[string]string{OptSourceAddress: "10.0.0.0/8"}, args: []string{"true"}, wantIn: false, wantSSHDLog: "not from a permitted source address (127.0.0.1)"},
		{name: "source-address includes 127.0.0.1", ca: keys.User, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute),
			options: map[string]string{OptSourceAddress: "10.0.0.0/8,127.0.0.0/8"}, args: []string{"echo", "from-loopback"}, wantIn: true, wantOut: "from-loopback"},
		{name: "force-command replaces the command", ca: keys.User, validAfter: now.Add(-time.Minute), validBefore: now.Add(10 * time.Minute),
			options: map[string]string{OptForceCommand: "echo forced"}, args: []string{"echo", "asked"}, wantIn: true, wantOut: "forced", wantNotOutput: "asked"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyPath, signer := sshdtest.NewUserKey(t, t.TempDir(), "id_ed25519")
			cert, err := SignUserCert(tt.ca, UserCertSpec{
				Key: signer.PublicKey(), Serial: uint64(100 + i), KeyID: fmt.Sprintf("matrix-%d", i),
				Principals: []string{login + "@db1"}, ValidAfter: tt.validAfter, ValidBefore: tt.validBefore,
				Extensions: tt.extensions, CriticalOptions: tt.options,
			})
			if err != nil {
				t.Fatal(err)
			}
			sshdtest.WriteCert(t, keyPath, cert)
			in, out := sshdVerdict(t, srv, keyPath, tt.args...)
			if in != tt.wantIn {
				t.Fatalf("logged in = %v, want %v; output %q\nsshd log:\n%s", in, tt.wantIn, out, srv.Log())
			}
			if tt.wantOut != "" && !strings.Contains(out, tt.wantOut) {
				t.Errorf("output %q lacks %q", out, tt.wantOut)
			}
			if tt.wantNotOutput != "" && strings.Contains(out, tt.wantNotOutput) {
				t.Errorf("output %q contains %q", out, tt.wantNotOutput)
			}
			if tt.wantSSHDLog != "" && !srv.WaitLog(tt.wantSSHDLog, 5*time.Second) {
				t.Errorf("sshd log lacks %q:\n%s", tt.wantSSHDLog, srv.Log())
			}
		})
	}
}

// TestRealSSHDRevocation: sshd refuses a serial listed in a KRL built by
// ssh-keygen or by KRL, and refuses every certificate when the KRL is
// unreadable.
func TestRealSSHDRevocation(t *testing.T) {
	sshdtest.Require(t, "sshd", "ssh", "ssh-keygen")
	login := sshdtest.LocalUser(t)
	dir := t.TempDir()
	keys, _, err := InitKeys(filepath.Join(dir, "ca"), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	krl := filepath.Join(dir, "revoked.krl")
	spec := filepath.Join(dir, "krl.spec")
	if err := os.WriteFile(spec, []byte("serial: 200\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sshdtest.Path("ssh-keygen"), "-k", "-f", krl, "-s", filepath.Join(dir, "ca", "user_ca.pub"), spec).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -k: %v\n%s", err, out)
	}
	cfg := sshdtest.Config{TrustedUserCAKeys: []ssh.PublicKey{keys.User.PublicKey()}, Principals: []string{login + "@db1"}, RevokedKeys: krl}
	withKRL := sshdtest.Start(t, cfg)
	cfg.RevokedKeys = filepath.Join(dir, "missing.krl")
	missingKRL := sshdtest.Start(t, cfg)
	// The same verdicts from lists built by KRL, as jitd serves them.
	ours := func(name string, serials ...uint64) *sshdtest.Server {
		b, err := KRL(keys.User.PublicKey(), serials, 1, time.Now(), "")
		if err != nil {
			t.Fatal(err)
		}
		c := cfg
		c.RevokedKeys = filepath.Join(dir, name)
		if err := os.WriteFile(c.RevokedKeys, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return sshdtest.Start(t, c)
	}
	withOurKRL := ours("ours.krl", 200)
	withOurEmptyKRL := ours("empty.krl")

	tests := []struct {
		name   string
		srv    *sshdtest.Server
		serial uint64
		wantIn bool
	}{
		{name: "revoked serial", srv: withKRL, serial: 200, wantIn: false},
		{name: "other serial", srv: withKRL, serial: 201, wantIn: true},
		{name: "unreadable KRL fails closed", srv: missingKRL, serial: 201, wantIn: false},
		{name: "revoked serial, our KRL", srv: withOurKRL, serial: 200, wantIn: false},
		{name: "other serial, our KRL", srv: withOurKRL, serial: 201, wantIn: true},
		{name: "our empty KRL", srv: withOurEmptyKRL, serial: 200, wantIn: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyPath, signer := sshdtest.NewUserKey(t, t.TempDir(), "id_ed25519")
			now := time.Now()
			cert, err := SignUserCert(keys.User, UserCertSpec{
				Key: signer.PublicKey(), Serial: tt.serial, KeyID: "krl-test", Principals: []string{login + "@db1"},
				ValidAfter: now.Add(-time.Minute), ValidBefore: now.Add(10 * time.Minute),
			})
			if err != nil {
				t.Fatal(err)
			}
			sshdtest.WriteCert(t, keyPath, cert)
			if in, out := sshdVerdict(t, tt.srv, keyPath, "true"); in != tt.wantIn {
				t.Fatalf("logged in = %v, want %v; output %q\nsshd log:\n%s", in, tt.wantIn, out, tt.srv.Log())
			}
		})
	}
}
