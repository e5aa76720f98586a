package hostjoin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/hostjoin"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestInstalledSSHD joins with the built jit binary, starts a stock sshd
// from the installed files alone, and checks it as the bastion would use
// it: it presents the host certificate, accepts a target-CA certificate
// for LOGIN@THISHOST (jit host principals answering as nobody), refuses
// LOGIN@otherhost, and refuses a serial that a renewal's KRL revokes.
func TestInstalledSSHD(t *testing.T) {
	sshdtest.Require(t, "sshd", "ssh", "ssh-keygen")
	jit := safeJit(t)
	r := newTestRoot(t)
	login := sshdtest.LocalUser(t)
	s := newStandIn(t, "db1", login)
	out, err := runJit(t, jit, "host", "join", "--ca", s.URL(), "--fingerprint", s.fingerprint, "--token", s.token,
		"--root", r.layout.Root, "--reload-command", "true")
	if err != nil {
		t.Fatalf("jit host join: %v\n%s", err, out)
	}
	if !strings.Contains(out, "created "+r.layout.Path(hostjoin.DropIn)) {
		t.Errorf("jit host join printed:\n%s", out)
	}
	wantPrincipals := login + "@db1\n"
	if login == "root" {
		wantPrincipals += hostjoin.ProvisionPrincipalsLine("db1") + "\n"
	}
	if got, err := runJit(t, jit, "host", "principals", "--root", r.layout.Root, login); err != nil || got != wantPrincipals {
		t.Errorf("jit host principals %s = %q, %v", login, got, err)
	}
	if got, err := runJit(t, jit, "host", "principals", "--root", r.layout.Root, "nosuchlogin"); err != nil || got != "" {
		t.Errorf("jit host principals nosuchlogin = %q, %v; want nothing, exit 0", got, err)
	}

	srv := startSSHD(t, r.layout)
	dir := t.TempDir()
	known := filepath.Join(dir, "known_hosts")
	// Only the host CA: ssh succeeds only if sshd presents the certificate.
	writeFile(t, known, "@cert-authority [127.0.0.1]:"+strconv.Itoa(srv.Port)+" "+authorized(s.hostCA.PublicKey())+"\n")
	srv.KnownHosts = known

	ok := userCert(t, s, dir, "ok", login+"@db1", 101)
	other := userCert(t, s, dir, "other", login+"@db2", 102)
	revoked := userCert(t, s, dir, "revoked", login+"@db1", 103)
	for _, c := range []struct {
		key  string
		want bool
	}{{ok, true}, {other, false}, {revoked, true}} {
		if got := sshRuns(t, srv, c.key); got != c.want {
			t.Errorf("%s: login %v, want %v\nsshd log:\n%s", filepath.Base(c.key), got, c.want, srv.log())
		}
	}

	// Revoke serial 103 at the "CA" and renew through the binary: sshd
	// reads RevokedKeys at every login.
	// The default reload under a root: SIGHUP to the pid in ROOT/run/sshd.pid.
	s.set(func(s *standIn) { s.krl = makeKRL(t, s.targetCA.PublicKey(), 103) })
	testkit.WaitFor(t, 5*time.Second, "sshd writes its pid file", func() bool {
		_, err := os.Stat(r.layout.Path(hostjoin.PIDFile))
		return err == nil
	})
	if out, err := runJit(t, jit, "host", "renew", "--root", r.layout.Root); err != nil {
		t.Fatalf("jit host renew: %v\n%s", err, out)
	} else if !strings.Contains(out, "changed "+r.layout.Path(hostjoin.KRLFile)) || strings.Contains(out, "-cert.pub") {
		t.Errorf("jit host renew of a fresh certificate printed (want the KRL alone):\n%s", out)
	} else if !strings.Contains(out, "sshd reloaded: SIGHUP to the pid in "+r.layout.Path(hostjoin.PIDFile)) {
		t.Errorf("jit host renew did not reload by SIGHUP:\n%s", out)
	}
	testkit.WaitFor(t, 10*time.Second, "sshd re-executes after SIGHUP", func() bool {
		return strings.Count(srv.log(), "Server listening on") >= 2
	})
	if sshRuns(t, srv, revoked) {
		t.Errorf("a revoked serial logged in\nsshd log:\n%s", srv.log())
	}
	if !sshRuns(t, srv, ok) {
		t.Errorf("after the KRL refresh the valid certificate was refused\nsshd log:\n%s", srv.log())
	}

	// A forced renewal: a new host certificate, presented after the reload.
	if out, err := runJit(t, jit, "host", "renew", "--force", "--root", r.layout.Root); err != nil {
		t.Fatalf("jit host renew --force: %v\n%s", err, out)
	} else if !strings.Contains(out, "changed "+r.layout.Path(hostjoin.DefaultHostKey)+"-cert.pub") {
		t.Errorf("jit host renew --force printed:\n%s", out)
	}
	testkit.WaitFor(t, 10*time.Second, "sshd re-executes after the second SIGHUP", func() bool {
		return strings.Count(srv.log(), "Server listening on") >= 3
	})
	if !sshRuns(t, srv, ok) {
		t.Errorf("after the forced renewal the valid certificate was refused\nsshd log:\n%s", srv.log())
	}
}

func runJit(t *testing.T, jit string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jit, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%w: %s", err, stderr.String())
	}
	return stdout.String(), err
}

// userCert writes a key and a target-CA user certificate for principal.
func userCert(t *testing.T, s *standIn, dir, name, principal string, serial uint64) string {
	t.Helper()
	key, signer := sshdtest.NewUserKey(t, dir, name)
	now := time.Now()
	cert := &ssh.Certificate{
		Key: signer.PublicKey(), Serial: serial, CertType: ssh.UserCert, KeyId: name,
		ValidPrincipals: []string{principal},
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
	}
	if err := cert.SignCert(rand.Reader, s.targetCA); err != nil {
		t.Fatal(err)
	}
	sshdtest.WriteCert(t, key, cert)
	return key
}

func sshRuns(t *testing.T, srv *liveSSHD, key string) bool {
	t.Helper()
	cmd := sshdtest.SSHCommand(t, &srv.Server, key, "true")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Logf("ssh with %s: %v: %s", filepath.Base(key), err, out)
	}
	return err == nil
}

// liveSSHD is an sshd started from a test root's own sshd_config, with
// its log.
type liveSSHD struct {
	sshdtest.Server
	testkit.Buffer
}

func (l *liveSSHD) log() string { return l.String() }

// startSSHD runs sshd -D -e -f ROOT/etc/ssh/sshd_config on a free port of
// 127.0.0.1 and stops it in t.Cleanup.
func startSSHD(t *testing.T, l hostjoin.Layout) *liveSSHD {
	t.Helper()
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatalf("privilege separation directory: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	srv := &liveSSHD{Server: sshdtest.Server{Port: port, Addr: "127.0.0.1:" + strconv.Itoa(port), Login: sshdtest.LocalUser(t)}}
	cmd := exec.Command(sshdtest.Path("sshd"), "-D", "-e", "-f", l.Path(hostjoin.SSHDConfig), "-o", "ListenAddress="+srv.Addr)
	cmd.Stdout, cmd.Stderr = srv, srv
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	testkit.WaitFor(t, 10*time.Second, "sshd accepts connections", func() bool {
		c, err := net.DialTimeout("tcp", srv.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return srv
}
