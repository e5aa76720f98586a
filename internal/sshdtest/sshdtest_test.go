package sshdtest

import (
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/testkit"
)

func userCert(t *testing.T, ca ssh.Signer, key ssh.PublicKey, keyID string, principals ...string) *ssh.Certificate {
	t.Helper()
	now := time.Now()
	c := &ssh.Certificate{
		Key:             key,
		Serial:          42,
		CertType:        ssh.UserCert,
		KeyId:           keyID,
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(10 * time.Minute).Unix()),
		Permissions:     ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestPath(t *testing.T) {
	tests := []struct {
		name    string
		bin     string
		wantAbs bool
	}{
		{name: "shell on PATH", bin: "sh", wantAbs: true},
		{name: "missing binary", bin: "sshdtest-no-such-binary", wantAbs: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Path(tt.bin)
			if tt.wantAbs && !filepath.IsAbs(got) {
				t.Fatalf("Path(%q) = %q, want an absolute path", tt.bin, got)
			}
			if !tt.wantAbs && got != "" {
				t.Fatalf("Path(%q) = %q, want empty", tt.bin, got)
			}
		})
	}
}

func TestSSHDConfigOrder(t *testing.T) {
	cfg := Config{
		RevokedKeys: "/x/krl",
		Extra:       []string{"PermitRootLogin no", "Match User nobody", "  ForceCommand false"},
	}
	got := sshdConfig(cfg, serverFiles{hostKey: "/d/hk", trustedCAs: "/d/ca", principals: "/d/p"}, "127.0.0.1:2222")
	lines := strings.Split(strings.TrimSpace(got), "\n")
	tests := []struct {
		name string
		line string
		pos  int // index; -1 means last
	}{
		{name: "extra before generated lines, so it wins", line: "PermitRootLogin no", pos: 0},
		{name: "match block last", line: "  ForceCommand false", pos: -1},
		{name: "listen address", line: "ListenAddress 127.0.0.1:2222", pos: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pos := tt.pos
			if pos < 0 {
				pos = len(lines) - 1
			}
			if lines[pos] != tt.line {
				t.Fatalf("line %d = %q, want %q\n%s", pos, lines[pos], tt.line, got)
			}
		})
	}
	for _, want := range []string{"RevokedKeys /x/krl", "AuthorizedPrincipalsFile /d/p", "TrustedUserCAKeys /d/ca", "AuthorizedKeysFile none"} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("config lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "HostCertificate") {
		t.Errorf("config has HostCertificate without a host CA:\n%s", got)
	}
}

func TestCertificateLogin(t *testing.T) {
	Require(t, "sshd", "ssh")
	userCA := testkit.Signer(t)
	otherCA := testkit.Signer(t)
	login := LocalUser(t)
	srv := Start(t, Config{
		TrustedUserCAKeys: []ssh.PublicKey{userCA.PublicKey()},
		Principals:        []string{login + "@db1"},
	})

	tests := []struct {
		name       string
		ca         ssh.Signer // nil: no certificate, the plain key only
		principals []string
		wantOK     bool
	}{
		{name: "cert for LOGIN@db1", ca: userCA, principals: []string{login + "@db1"}, wantOK: true},
		{name: "plain key without cert", ca: nil, wantOK: false},
		{name: "cert for another host", ca: userCA, principals: []string{login + "@db2"}, wantOK: false},
		{name: "cert from an untrusted CA", ca: otherCA, principals: []string{login + "@db1"}, wantOK: false},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyPath, signer := NewUserKey(t, t.TempDir(), "id_ed25519")
			keyID := "sshdtest-case-" + string(rune('a'+i))
			if tt.ca != nil {
				WriteCert(t, keyPath, userCert(t, tt.ca, signer.PublicKey(), keyID, tt.principals...))
			}
			out, err := SSHCommand(t, srv, keyPath, "echo", "hello").CombinedOutput()
			if tt.wantOK {
				if err != nil || strings.TrimSpace(string(out)) != "hello" {
					t.Fatalf("ssh: %v, output %q\nsshd log:\n%s", err, out, srv.Log())
				}
				if want := `Accepted certificate ID "` + keyID + `"`; !strings.Contains(srv.Log(), want) {
					t.Fatalf("sshd log lacks %q:\n%s", want, srv.Log())
				}
				return
			}
			if err == nil {
				t.Fatalf("ssh succeeded, want refusal; output %q", out)
			}
			if !strings.Contains(string(out), "Permission denied") {
				t.Fatalf("ssh output %q, want Permission denied", out)
			}
		})
	}
}

func TestHostCertificate(t *testing.T) {
	Require(t, "sshd", "ssh")
	userCA, hostCA, otherCA := testkit.Signer(t), testkit.Signer(t), testkit.Signer(t)
	login := LocalUser(t)
	srv := Start(t, Config{
		TrustedUserCAKeys: []ssh.PublicKey{userCA.PublicKey()},
		Principals:        []string{login + "@db1"},
		HostCA:            hostCA,
		HostName:          "db1",
		Extra:             []string{"ForceCommand echo forced"},
	})
	if srv.HostCert == nil || !strings.Contains(strings.Join(srv.HostCert.ValidPrincipals, ","), "127.0.0.1,db1") {
		t.Fatalf("host certificate %+v, want principals 127.0.0.1 and db1", srv.HostCert)
	}
	keyPath, signer := NewUserKey(t, t.TempDir(), "id")
	WriteCert(t, keyPath, userCert(t, userCA, signer.PublicKey(), "host-test", login+"@db1"))

	tests := []struct {
		name    string
		trustCA ssh.PublicKey // nil: pin the host key
		wantOK  bool
	}{
		{name: "known_hosts trusts the host CA", trustCA: hostCA.PublicKey(), wantOK: true},
		{name: "known_hosts pins the host key", trustCA: nil, wantOK: true},
		{name: "known_hosts trusts another CA", trustCA: otherCA.PublicKey(), wantOK: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			WriteKnownHosts(t, srv.KnownHosts, srv, tt.trustCA)
			out, err := SSHCommand(t, srv, keyPath, "true").CombinedOutput()
			if tt.wantOK {
				// ForceCommand from Extra replaces "true".
				if err != nil || strings.TrimSpace(string(out)) != "forced" {
					t.Fatalf("ssh: %v, output %q\nsshd log:\n%s", err, out, srv.Log())
				}
				return
			}
			if err == nil || !strings.Contains(string(out), "Host key verification failed") {
				t.Fatalf("ssh: %v, output %q, want host key verification failure", err, out)
			}
		})
	}
}

// TestHostOfLiteralServer covers a Server a test fills in itself (around
// an sshd it started), which has Addr and Port but no Host.
func TestHostOfLiteralServer(t *testing.T) {
	tests := []struct {
		name        string
		srv         Server
		wantPattern string
	}{
		{name: "Host set", srv: Server{Host: "10.203.0.2", Port: 22}, wantPattern: "10.203.0.2"},
		{name: "only Addr", srv: Server{Addr: "127.0.0.1:2200", Port: 2200}, wantPattern: "[127.0.0.1]:2200"},
		{name: "nothing but a port", srv: Server{Port: 2200}, wantPattern: "[127.0.0.1]:2200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.srv.KnownHostsPattern(); got != tt.wantPattern {
				t.Fatalf("KnownHostsPattern() = %q, want %q", got, tt.wantPattern)
			}
		})
	}
}
