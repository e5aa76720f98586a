package bastion

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/sessionlog"
)

// TestMain fails the package if any goroutine outlives the tests: every
// test closes its Server in Cleanup, so leftovers are leaks of Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestShellAndExecSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name       string
		user       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
		wantRec    []string // substrings of the recorded output
		wantMarker string
		wantCmd    string
	}{
		{
			name:       "shell through a pty",
			user:       e.login + "@db1",
			args:       []string{"-tt"},
			stdin:      "echo shell-$((6*7))\nexit 3\n",
			wantCode:   3,
			wantStdout: "shell-42",
			wantRec:    []string{"shell-42"},
			wantMarker: "exit-status 3",
			wantCmd:    "shell",
		},
		{
			name:       "exec without pty, login:host form",
			user:       e.login + ":db1",
			args:       []string{"echo out-$((6*7)); echo err-$((6*7)) >&2; exit 3"},
			wantCode:   3,
			wantStdout: "out-42\n",
			wantStderr: "err-42",
			wantRec:    []string{"out-42", "err-42"},
			wantMarker: "exit-status 3",
			wantCmd:    "exec echo out-",
		},
		{
			name:       "exec with pty",
			user:       e.login + "@db1",
			args:       []string{"-tt", "echo tty-$((6*7)); tty >/dev/null && echo has-tty"},
			wantCode:   0,
			wantStdout: "has-tty",
			wantRec:    []string{"tty-42", "has-tty"},
			wantMarker: "exit-status 0",
			wantCmd:    "exec echo tty-",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, _, _ := e.userCert(t, certSpec{name: "k" + strconv.Itoa(i), principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, tc.user, tc.args...), tc.stdin)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s\ntarget log:\n%s", code, tc.wantCode, stderr, e.target.Log())
			}
			if !strings.Contains(stdout, tc.wantStdout) {
				t.Errorf("stdout %q does not contain %q", stdout, tc.wantStdout)
			}
			if !strings.Contains(stderr, tc.wantStderr) {
				t.Errorf("stderr %q does not contain %q", stderr, tc.wantStderr)
			}
			ended := e.backend.waitEnded(t, i+1)
			rec := ended[i]
			if rec.ExitStatus != tc.wantCode || rec.User != "alice" || rec.Host != "db1" || rec.Login != e.login || rec.TargetSerial == 0 || rec.BytesOut == 0 {
				t.Errorf("session record %+v", rec)
			}
			if !strings.HasPrefix(rec.Command, tc.wantCmd) {
				t.Errorf("session command %q, want prefix %q", rec.Command, tc.wantCmd)
			}
			r := readRecording(t, rec)
			if want := e.login + "@db1 by alice"; r.Header.Title != want || r.Header.SessionID != rec.ID {
				t.Errorf("recording header %+v, want title %q and id %q", r.Header, want, rec.ID)
			}
			out := eventText(r, sessionlog.CodeOutput)
			for _, w := range tc.wantRec {
				if !strings.Contains(out, w) {
					t.Errorf("recording output does not contain %q:\n%s", w, out)
				}
			}
			if m := eventText(r, sessionlog.CodeMarker); !strings.Contains(m, tc.wantMarker) {
				t.Errorf("recording markers %q lack %q", m, tc.wantMarker)
			}
			if in := eventText(r, sessionlog.CodeInput); in != "" {
				t.Errorf("input recorded without RecordInput: %q", in)
			}
			e.backend.mu.Lock()
			indexed := e.backend.index[rec.ID]
			e.backend.mu.Unlock()
			var all strings.Builder
			for _, l := range indexed {
				all.WriteString(l.Text + "\n")
			}
			if !strings.Contains(all.String(), tc.wantRec[0]) {
				t.Errorf("IndexText did not receive %q: %q", tc.wantRec[0], all.String())
			}
		})
	}
	if n := len(e.srv.LiveSessions()); n != 0 {
		t.Errorf("%d live sessions after all ended", n)
	}
}

func TestFileTransfers(t *testing.T) {
	sshdtest.Require(t, "scp", "sftp")
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	src := filepath.Join(e.dir, "payload.bin")
	data := make([]byte, 300*1024+7)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)
	remoteDir := t.TempDir() // the target is this machine
	port := strconv.Itoa(e.port)
	user := "User=" + e.login + ":db1"
	tests := []struct {
		name       string
		bin        string
		args       []string
		stdin      string
		result     string // local or remote path that must hold the payload
		wantMarker string
		wantIn     bool // bytes flow client -> target
	}{
		{
			name:       "scp legacy protocol upload",
			bin:        "scp",
			args:       []string{"-O", "-P", port, "-o", user, src, "127.0.0.1:" + filepath.Join(remoteDir, "scp-O.bin")},
			result:     filepath.Join(remoteDir, "scp-O.bin"),
			wantMarker: "scp file payload.bin (307207 bytes",
			wantIn:     true,
		},
		{
			name:       "scp legacy protocol download",
			bin:        "scp",
			args:       []string{"-O", "-P", port, "-o", user, "127.0.0.1:" + src, filepath.Join(remoteDir, "scp-down.bin")},
			result:     filepath.Join(remoteDir, "scp-down.bin"),
			wantMarker: "scp file payload.bin (307207 bytes",
		},
		{
			name:       "scp over sftp upload",
			bin:        "scp",
			args:       []string{"-P", port, "-o", user, src, "127.0.0.1:" + filepath.Join(remoteDir, "scp-s.bin")},
			result:     filepath.Join(remoteDir, "scp-s.bin"),
			wantMarker: "sftp open \"" + filepath.Join(remoteDir, "scp-s.bin") + "\" (write)",
			wantIn:     true,
		},
		{
			name:       "sftp batch download",
			bin:        "sftp",
			args:       []string{"-b", "-", "-P", port, "-o", user, "127.0.0.1"},
			stdin:      "get " + src + " " + filepath.Join(remoteDir, "sftp.bin") + "\n",
			result:     filepath.Join(remoteDir, "sftp.bin"),
			wantMarker: "sftp open \"" + src + "\" (read)",
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append(e.sshArgs(key), tc.args...)
			stdout, stderr, code := run(t, exec.Command(sshdtest.Path(tc.bin), args...), tc.stdin)
			if code != 0 {
				t.Fatalf("%s exit %d\nstdout:\n%s\nstderr:\n%s", tc.bin, code, stdout, stderr)
			}
			got, err := os.ReadFile(tc.result)
			if err != nil {
				t.Fatal(err)
			}
			if sha256.Sum256(got) != want {
				t.Fatalf("%s: transferred file differs (%d bytes, want %d)", tc.result, len(got), len(data))
			}
			ended := e.backend.waitEnded(t, i+1)
			rec := ended[i]
			moved := rec.BytesOut
			if tc.wantIn {
				moved = rec.BytesIn
			}
			if moved < int64(len(data)) {
				t.Errorf("session record counts in=%d out=%d, want >= %d in the transfer direction", rec.BytesIn, rec.BytesOut, len(data))
			}
			r := readRecording(t, rec)
			if m := eventText(r, sessionlog.CodeMarker); !strings.Contains(m, tc.wantMarker) {
				t.Errorf("markers lack %q:\n%s", tc.wantMarker, m)
			}
			if out := eventText(r, sessionlog.CodeOutput); len(out) > 1024 {
				t.Errorf("binary transfer recorded as %d bytes of output", len(out))
			}
		})
	}
}

func TestForwardingRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	tests := []struct {
		name       string
		args       []string
		wantStderr string
		wantAudit  string
	}{
		{
			// -W opens a direct-tcpip channel, exactly what -L does per
			// accepted connection.
			name:       "local (direct-tcpip)",
			args:       []string{"-W", e.target.Addr},
			wantStderr: "administratively prohibited",
			wantAudit:  "forwarding refused: direct-tcpip to " + e.target.Addr,
		},
		{
			name:       "remote (tcpip-forward)",
			args:       []string{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:9", "true"},
			wantStderr: "remote port forwarding failed",
			wantAudit:  "forwarding refused: tcpip-forward",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := run(t, e.ssh(key, e.login+"@db1", tc.args...), "")
			if code == 0 || !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("exit %d, stderr %q; want refusal with %q", code, stderr, tc.wantStderr)
			}
			_, _, rejected := e.backend.snapshot()
			if !containsAny(rejected, tc.wantAudit) {
				t.Errorf("refusal not audited: %q", rejected)
			}
		})
	}
}

func containsAny(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func TestCertificateRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	otherCA := newSigner(t)
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
				mid := newSigner(t)
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
	wrong := newSigner(t)
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

// TestBinaryOutputRecorded: output that is not text reaches the client
// unchanged and is recorded byte for byte as binary events (about 4/3 of
// its size, not six times), and none of it goes to the search index.
func TestBinaryOutputRecorded(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name string
		args []string
		size int
	}{
		{name: "exec", args: []string{"head -c 300000 /dev/zero"}, size: 300000},
		{name: "exec with pty", args: []string{"-tt", "stty raw -echo; head -c 200000 /dev/zero"}, size: 200000},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			key, _, _ := e.userCert(t, certSpec{name: "b" + strconv.Itoa(i), principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, e.login+"@db1", tc.args...), "")
			if code != 0 {
				t.Fatalf("exit code %d; stderr:\n%s", code, stderr)
			}
			if stdout != strings.Repeat("\x00", tc.size) {
				t.Fatalf("client got %d bytes, want %d zeros", len(stdout), tc.size)
			}
			rec := e.backend.waitEnded(t, i+1)[i]
			r := readRecording(t, rec)
			var got bytes.Buffer
			for _, ev := range r.Events {
				switch ev.Code {
				case sessionlog.CodeOutput, sessionlog.CodeBinaryOutput:
					p, err := ev.Bytes()
					if err != nil {
						t.Fatal(err)
					}
					got.Write(p)
				}
			}
			if got.String() != stdout {
				t.Errorf("recording holds %d bytes of output, want the %d the client got", got.Len(), len(stdout))
			}
			if rec.RecordingSize > int64(tc.size)*3/2 {
				t.Errorf("recording of %d bytes for %d bytes of binary output", rec.RecordingSize, tc.size)
			}
			e.backend.mu.Lock()
			indexed := e.backend.index[rec.ID]
			e.backend.mu.Unlock()
			for _, l := range indexed {
				if l.Kind == sessionlog.CodeOutput {
					t.Errorf("binary output indexed as %q", l.Text)
				}
			}
		})
	}
}

func TestClientKilledFinalisesRecording(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true, recordInput: true})
	cmd := e.ssh(key, e.login+"@db1", "-tt")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "echo before-$((6*7))\n"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !e.indexed("before-42") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatal("output never reached the index")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if live := e.srv.LiveSessions(); len(live) != 1 || live[0].User != "alice" {
		t.Errorf("LiveSessions = %+v, want one session of alice", live)
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	_ = cmd.Wait()
	rec := e.backend.waitEnded(t, 1)[0]
	r := readRecording(t, rec)
	if !strings.Contains(eventText(r, sessionlog.CodeOutput), "before-42") {
		t.Errorf("recording lacks output")
	}
	if !strings.Contains(eventText(r, sessionlog.CodeInput), "echo before") {
		t.Errorf("recording lacks input though RecordInput is set")
	}
}

// indexed reports whether any IndexText line contains s.
func (e *env) indexed(s string) bool {
	e.backend.mu.Lock()
	defer e.backend.mu.Unlock()
	for _, lines := range e.backend.index {
		for _, l := range lines {
			if strings.Contains(l.Text, s) {
				return true
			}
		}
	}
	return false
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

func TestRecordOrRefuse(t *testing.T) {
	base := t.TempDir()
	notDir := filepath.Join(base, "file")
	if err := os.WriteFile(notDir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(base, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		dir        string
		rootSkip   bool
		failOpen   bool
		auditDown  bool
		wantRun    bool
		wantStderr string
		wantAudit  string
	}{
		{name: "read-only recording directory", dir: readOnly, rootSkip: true, wantStderr: "recording unavailable", wantAudit: "recording unavailable"},
		{name: "recording directory is a file", dir: notDir, wantStderr: "recording unavailable", wantAudit: "recording unavailable"},
		{name: "fail open runs unrecorded", dir: notDir, failOpen: true, wantRun: true, wantAudit: "recording unavailable"},
		{name: "session start not audited", auditDown: true, wantStderr: "audit unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rootSkip && os.Geteuid() == 0 {
				t.Skip("root ignores directory permissions")
			}
			e := newEnv(t, envOptions{recordingDir: tc.dir, failOpen: tc.failOpen})
			e.backend.failStart = tc.auditDown
			key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			stdout, stderr, code := run(t, e.ssh(key, e.login+"@db1", "echo ran"), "")
			if ran := code == 0 && strings.Contains(stdout, "ran"); ran != tc.wantRun || !strings.Contains(stderr, tc.wantStderr) {
				t.Fatalf("exit %d stdout %q stderr %q; want run=%t and stderr %q", code, stdout, stderr, tc.wantRun, tc.wantStderr)
			}
			started, _, rejected := e.backend.snapshot()
			if (len(started) != 0) != tc.wantRun {
				t.Errorf("sessions started: %+v", started)
			}
			if tc.wantAudit != "" && !containsAny(rejected, tc.wantAudit) {
				t.Errorf("refusal not audited: %q", rejected)
			}
			if tc.auditDown {
				if files, _ := filepath.Glob(filepath.Join(e.recDir, "*", "*", "*", "*.cast")); len(files) != 0 {
					t.Errorf("recording of a refused session left behind: %q", files)
				}
			}
		})
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

func TestCloseEndsLiveSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	cmd := e.ssh(key, e.login+"@db1", "-tt", "echo up-$((6*7)); sleep 30")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !e.indexed("up-42") {
		if time.Now().After(deadline) {
			t.Fatal("session never produced output")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := e.srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// Close returns only after SessionEnded.
	_, ended, _ := e.backend.snapshot()
	if len(ended) != 1 || ended[0].EndReason != "bastion shutting down" {
		t.Fatalf("ended sessions after Close: %+v", ended)
	}
	readRecording(t, ended[0])
	if live := e.srv.LiveSessions(); len(live) != 0 {
		t.Errorf("LiveSessions after Close: %+v", live)
	}
}

func TestPermittedLocalForwarding(t *testing.T) {
	e := newEnv(t, envOptions{})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true,
		extensions: map[string]string{"permit-pty": "", "permit-port-forwarding": ""}})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lport := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := e.ssh(key, e.login+"@db1", "-tt", "-o", "ExitOnForwardFailure=yes",
		"-L", strconv.Itoa(lport)+":"+e.target.Addr, "echo fwd-$((6*7)); sleep 30")
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for !e.indexed("fwd-42") {
		if time.Now().After(deadline) {
			t.Fatal("session never produced output")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Through the forward we reach the target's sshd, from the target.
	c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(lport), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	banner := make([]byte, 8)
	if _, err := io.ReadFull(c, banner); err != nil || string(banner) != "SSH-2.0-" {
		t.Fatalf("banner %q, %v", banner, err)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	rec := e.backend.waitEnded(t, 1)[0]
	if m := eventText(readRecording(t, rec), sessionlog.CodeMarker); !strings.Contains(m, "forwarding: direct-tcpip to "+e.target.Addr) {
		t.Errorf("forwarding not marked: %q", m)
	}
}
