package bastion

import (
	"bytes"
	"crypto/rand"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/sessionlog"
)

func TestCertificateRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	otherCA := testkit.Signer(t)
	tests := []struct {
		name       string
		spec       certSpec
		user       string
		cert       func(t *testing.T, key ssh.Signer, c *ssh.Certificate) *ssh.Certificate // rewrite before use
		wantReason string
	}{
		{
			name:       "expired",
			spec:       certSpec{principal: e.login + "@db1", validAfter: time.Now().Add(-time.Hour), validFor: -time.Minute, register: true},
			wantReason: "expired",
		},
		{
			name:       "certificate for db2 used for db1",
			spec:       certSpec{principal: e.login + "@db2", validFor: 5 * time.Minute, register: true},
			wantReason: "not in the set of valid principals",
		},
		{
			name:       "another CA",
			spec:       certSpec{principal: e.login + "@db1", validFor: 5 * time.Minute, register: true, signer: otherCA},
			wantReason: "untrusted CA",
		},
		{
			name:       "revoked",
			spec:       certSpec{principal: e.login + "@db1", validFor: 5 * time.Minute, register: true, revoked: true},
			wantReason: "revoked",
		},
		{
			name:       "unknown serial",
			spec:       certSpec{principal: e.login + "@db1", validFor: 5 * time.Minute},
			wantReason: "unknown",
		},
		{
			name: "host certificate",
			spec: certSpec{principal: e.login + "@db1", validFor: 5 * time.Minute, register: true},
			cert: func(t *testing.T, _ ssh.Signer, c *ssh.Certificate) *ssh.Certificate {
				return resign(t, c, ssh.HostCert, e.userCA)
			},
			wantReason: "want user certificate",
		},
		{
			name: "chained certificate",
			spec: certSpec{principal: e.login + "@db1", validFor: 5 * time.Minute, register: true},
			cert: func(t *testing.T, key ssh.Signer, c *ssh.Certificate) *ssh.Certificate {
				// An intermediate "CA" that is itself a certificate from
				// the trusted user CA signs the engineer's key.
				mid := testkit.Signer(t)
				midCert := resign(t, &ssh.Certificate{Key: mid.PublicKey(), Serial: c.Serial + 1, CertType: ssh.UserCert,
					ValidPrincipals: c.ValidPrincipals, ValidAfter: c.ValidAfter, ValidBefore: c.ValidBefore}, ssh.UserCert, e.userCA)
				midSigner, err := ssh.NewCertSigner(midCert, mid)
				if err != nil {
					t.Fatal(err)
				}
				return signChained(t, c, midSigner)
			},
			wantReason: "invalid for certificates",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.spec.name = "k" + strconv.Itoa(i)
			keyPath, key, c := e.userCert(t, tc.spec)
			if tc.cert != nil {
				c = tc.cert(t, key, c)
				sshdtest.WriteCert(t, keyPath, c)
			}
			// Every case is also tried with x/crypto's client, because
			// OpenSSH refuses to load some malformed certificates at all.
			for _, client := range []string{"openssh", "x/crypto"} {
				var err error
				switch client {
				case "openssh":
					_, stderr, code := run(t, e.ssh(keyPath, e.login+"@db1", "true"), "")
					if code == 0 {
						t.Fatalf("openssh: session accepted; stderr %q", stderr)
					}
				default:
					err = e.dialXCrypto(key, c, e.login+"@db1")
					if err == nil {
						t.Fatalf("x/crypto: session accepted")
					}
					t.Logf("x/crypto: %v", err)
				}
			}
			started, _, rejected := e.backend.snapshot()
			if len(started) != 0 {
				t.Errorf("sessions started: %+v", started)
			}
			if !containsAny(rejected, tc.wantReason) {
				t.Errorf("no audited refusal with %q in %q", tc.wantReason, rejected)
			}
		})
	}
}

// dialXCrypto authenticates to the bastion with key+cert through x/crypto's
// client and runs "true".
func (e *env) dialXCrypto(key ssh.Signer, c *ssh.Certificate, user string) error {
	cs, err := ssh.NewCertSigner(c, key)
	if err != nil {
		// x/crypto refuses to pair some malformed certificates; fall
		// back to offering the certificate with a raw signer.
		cs = rawCertSigner{key: key, cert: c}
	}
	hk := &ssh.CertChecker{IsHostAuthority: func(a ssh.PublicKey, _ string) bool {
		return bytes.Equal(a.Marshal(), e.hostCA.PublicKey().Marshal())
	}}
	cl, err := ssh.Dial("tcp", "127.0.0.1:"+strconv.Itoa(e.port), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)}, HostKeyCallback: hk.CheckHostKey, Timeout: 10 * time.Second,
	})
	if err != nil {
		return err
	}
	defer cl.Close()
	s, err := cl.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Run("true")
}

// rawCertSigner presents cert as its public key and signs with key.
type rawCertSigner struct {
	key  ssh.Signer
	cert *ssh.Certificate
}

func (r rawCertSigner) PublicKey() ssh.PublicKey { return r.cert }
func (r rawCertSigner) Sign(rand io.Reader, data []byte) (*ssh.Signature, error) {
	return r.key.Sign(rand, data)
}

// resign copies c with type typ, signed by signer (x/crypto directly: the
// point is to build certificates ca refuses to make).
func resign(t *testing.T, c *ssh.Certificate, typ uint32, signer ssh.Signer) *ssh.Certificate {
	t.Helper()
	n := *c
	n.CertType = typ
	n.Signature, n.SignatureKey, n.Nonce = nil, nil, nil
	if err := n.SignCert(rand.Reader, signer); err != nil {
		t.Fatalf("sign: %v", err)
	}
	return &n
}

// signChained signs c with a certificate signer, which SignCert refuses, by
// building the signed bytes by hand (as certs.go's bytesForSigning does).
func signChained(t *testing.T, c *ssh.Certificate, certSigner ssh.Signer) *ssh.Certificate {
	t.Helper()
	n := *c
	n.Nonce = make([]byte, 32)
	if _, err := rand.Read(n.Nonce); err != nil {
		t.Fatal(err)
	}
	n.SignatureKey = certSigner.PublicKey()
	n.Signature = nil
	blob := n.Marshal()
	// Marshal ends with the signature string; an empty one is 4 bytes.
	sig, err := certSigner.Sign(rand.Reader, blob[:len(blob)-4])
	if err != nil {
		t.Fatal(err)
	}
	n.Signature = sig
	return &n
}

func TestWrongTargetHostKeyAborts(t *testing.T) {
	wrong := testkit.Signer(t)
	e := newEnv(t, envOptions{})
	e.targets["db3"] = Target{Name: "db3", Address: e.target.Addr, HostKey: wrong.PublicKey()}
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db3", validFor: 5 * time.Minute, register: true})
	_, stderr, code := run(t, e.ssh(key, e.login+"@db3", "echo should-not-run"), "")
	if code == 0 || !strings.Contains(stderr, "does not match pinned") {
		t.Fatalf("exit %d, stderr %q; want host key refusal", code, stderr)
	}
	started, _, rejected := e.backend.snapshot()
	if len(started) != 0 {
		t.Errorf("session started despite wrong host key: %+v", started)
	}
	if !containsAny(rejected, "does not match pinned") {
		t.Errorf("host key refusal not audited: %q", rejected)
	}
	if strings.Contains(e.target.Log(), "Accepted publickey") {
		t.Errorf("bastion authenticated to a target with the wrong host key:\n%s", e.target.Log())
	}
}

func TestSessionCutAtCertificateExpiry(t *testing.T) {
	e := newEnv(t, envOptions{expiryWarning: 2 * time.Second})
	key, _, c := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 4 * time.Second, register: true})
	start := time.Now()
	stdout, stderr, code := run(t, e.ssh(key, e.login+"@db1", "-tt", "sleep 30"), "")
	elapsed := time.Since(start)
	if code == 0 || elapsed > 15*time.Second {
		t.Fatalf("exit %d after %s; want the session cut at expiry", code, elapsed)
	}
	if vb := time.Unix(int64(c.ValidBefore), 0); time.Now().Before(vb) {
		t.Errorf("session ended before the certificate expired (%s)", vb)
	}
	if !strings.Contains(stdout+stderr, "certificate expires") {
		t.Errorf("no expiry warning on the terminal: stdout %q stderr %q", stdout, stderr)
	}
	rec := e.backend.waitEnded(t, 1)[0]
	if rec.EndReason != "certificate expired" {
		t.Errorf("end reason %q", rec.EndReason)
	}
	if m := eventText(readRecording(t, rec), sessionlog.CodeMarker); !strings.Contains(m, "certificate expires") {
		t.Errorf("warning not marked: %q", m)
	}
}

func TestRevocationCutsLiveSession(t *testing.T) {
	e := newEnv(t, envOptions{revokeEvery: 200 * time.Millisecond})
	key, _, c := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	cmd := e.ssh(key, e.login+"@db1", "-tt", "sleep 30")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.srv.LiveSessions()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("session never started: %s", errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	start := time.Now()
	e.backend.mu.Lock()
	st := e.backend.certs[c.Serial]
	st.Revoked = true
	e.backend.certs[c.Serial] = st
	e.backend.mu.Unlock()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("session exited 0 after revocation")
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatal("revoked session still running after 10s")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("cut %s after revocation; want within a few checks", d)
	}
	if !strings.Contains(out.String()+errb.String(), "certificate revoked") {
		t.Errorf("the engineer was not told why: stdout %q stderr %q", out.String(), errb.String())
	}
	if rec := e.backend.waitEnded(t, 1)[0]; rec.EndReason != "certificate revoked" {
		t.Errorf("end reason %q, want certificate revoked", rec.EndReason)
	}
}

func TestEngineerCertRefusedByTarget(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	// The known_hosts file trusts the host CA, which also certifies the target.
	cmd := exec.Command(sshdtest.Path("ssh"), append(e.sshArgs(key),
		"-p", strconv.Itoa(e.target.Port), "-l", e.login, "127.0.0.1", "echo direct")...)
	stdout, stderr, code := run(t, cmd, "")
	if code == 0 || strings.Contains(stdout, "direct") {
		t.Fatalf("target accepted the engineer's certificate: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "Permission denied") {
		t.Errorf("stderr %q, want Permission denied", stderr)
	}
}

// TestRevokedTargetHostCertificateAborts: a removed host's host
// certificate is revoked; the bastion must not open a session to whoever
// still presents it, and says why.
func TestRevokedTargetHostCertificateAborts(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.backend.mu.Lock()
	e.backend.revokedHosts = map[uint64]bool{e.target.HostCert.Serial: true}
	e.backend.mu.Unlock()
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	_, stderr, code := run(t, e.ssh(key, e.login+"@db1", "echo should-not-run"), "")
	if code == 0 || !strings.Contains(stderr, "is revoked") {
		t.Fatalf("exit %d, stderr %q; want the revoked host certificate refused", code, stderr)
	}
	if started, _, rejected := e.backend.snapshot(); len(started) != 0 || !containsAny(rejected, "is revoked") {
		t.Errorf("started %+v, rejected %q; want no session and the refusal audited", started, rejected)
	}
}
