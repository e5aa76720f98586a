package bastion

import (
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestCertificateRevokedCutsAtOnce: the feed's notice of a revoked serial
// ends the connection that presents it (or whose onward connection uses
// it) without waiting for the periodic check (an hour here), once the
// backend confirms; a notice the backend does not confirm cuts nothing.
func TestCertificateRevokedCutsAtOnce(t *testing.T) {
	tests := []struct {
		name string
		// revoke marks the certificate revoked in the backend and returns
		// its serial; confirm false leaves the backend saying not revoked.
		revoke     func(e *env, user uint64, target uint64) uint64
		wantReason string
	}{
		{"user", func(e *env, user, _ uint64) uint64 {
			st := e.backend.certs[user]
			st.Revoked = true
			e.backend.certs[user] = st
			return user
		}, "certificate revoked"},
		{"target", func(e *env, _, target uint64) uint64 {
			e.backend.revokedTargets = map[uint64]bool{target: true}
			return target
		}, "target certificate revoked"},
		{"host", func(e *env, _, _ uint64) uint64 {
			e.backend.revokedHosts = map[uint64]bool{e.target.HostCert.Serial: true}
			return e.target.HostCert.Serial
		}, "target host certificate revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{revokeEvery: time.Hour})
			key, _, c := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
			done, out := e.liveSleep(t, key)
			started, _, _ := e.backend.snapshot()
			target := started[0].TargetSerial

			// Not revoked in the backend: the notice is checked and ignored.
			e.backend.mu.Lock()
			calls := e.backend.statusCalls
			e.backend.mu.Unlock()
			for _, serial := range []uint64{c.Serial, target, e.target.HostCert.Serial} {
				e.srv.CertificateRevoked(serial)
			}
			testkit.WaitFor(t, 10*time.Second, "the backend asked about each serial", func() bool {
				e.backend.mu.Lock()
				defer e.backend.mu.Unlock()
				return e.backend.statusCalls >= calls+3
			})
			e.srv.CertificateRevoked(12345) // no connection has it
			if n := len(e.srv.LiveSessions()); n != 1 {
				t.Fatalf("%d live sessions after unconfirmed notices, want 1", n)
			}

			e.backend.mu.Lock()
			serial := tt.revoke(e, c.Serial, target)
			e.backend.mu.Unlock()
			e.srv.CertificateRevoked(serial)
			select {
			case err := <-done:
				done <- err // for the cleanup
				if err == nil {
					t.Fatal("session exited 0 after revocation")
				}
			case <-time.After(10 * time.Second):
				t.Fatal("revoked session still running 10s after the notice")
			}
			if rec := e.backend.waitEnded(t, 1)[0]; rec.EndReason != tt.wantReason {
				t.Errorf("end reason %q, want %q", rec.EndReason, tt.wantReason)
			}
			if !strings.Contains(out.String(), tt.wantReason) {
				t.Errorf("the engineer was not told why: %q", out.String())
			}
			testkit.WaitFor(t, 10*time.Second, "serial index emptied", func() bool { return e.srv.serials.len() == 0 })
		})
	}
}

// TestSetFeedHealthyStretchesThePoll: while the feed is healthy the
// periodic lookup waits RevocationBackstop; turning it off brings it back.
func TestSetFeedHealthyStretchesThePoll(t *testing.T) {
	s := &Server{cfg: Config{RevocationInterval: 5 * time.Second, RevocationBackstop: 30 * time.Second}}
	if d := s.revocationInterval(); d != 5*time.Second {
		t.Errorf("interval without feed %s, want 5s", d)
	}
	s.SetFeedHealthy(true)
	if d := s.revocationInterval(); d != 30*time.Second {
		t.Errorf("interval with a healthy feed %s, want 30s", d)
	}
	s.SetFeedHealthy(false)
	if d := s.revocationInterval(); d != 5*time.Second {
		t.Errorf("interval after the feed failed %s, want 5s", d)
	}
}

// TestPeriodicCheckCoversOnwardCertificates: the periodic check
// (watchRevocation) asks about the session's target host certificate
// too, not only the engineer's: one whose feed-triggered lookup failed,
// or whose cert.revoked arrived before the onward serials were indexed,
// is still caught. Here no notice comes at all and the periodic check
// runs every 200ms.
func TestPeriodicCheckCoversOnwardCertificates(t *testing.T) {
	e := newEnv(t, envOptions{revokeEvery: 200 * time.Millisecond})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	done, _ := e.liveSleep(t, key)
	e.backend.mu.Lock()
	e.backend.revokedHosts = map[uint64]bool{e.target.HostCert.Serial: true}
	e.backend.mu.Unlock()
	select {
	case err := <-done:
		done <- err // for the cleanup
	case <-time.After(5 * time.Second):
		t.Fatal("session to a target whose host certificate is revoked still running 5s later (periodic check every 200ms)")
	}
}

// TestFailedRecheckRetried: a feed notice whose lookup fails (the store
// briefly down) is tried again after a backoff, without waiting for the
// periodic check (an hour here).
func TestFailedRecheckRetried(t *testing.T) {
	e := newEnv(t, envOptions{revokeEvery: time.Hour})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	done, _ := e.liveSleep(t, key)
	e.backend.mu.Lock()
	e.backend.revokedHosts = map[uint64]bool{e.target.HostCert.Serial: true}
	e.backend.hostStatusFail = 2 // the notice's lookup and its first retry fail
	e.backend.mu.Unlock()
	e.srv.CertificateRevoked(e.target.HostCert.Serial)
	select {
	case err := <-done:
		done <- err // for the cleanup
	case <-time.After(15 * time.Second): // retries after 1s and 2s
		t.Fatal("session still running after a failed lookup of its revoked host certificate")
	}
	if rec := e.backend.waitEnded(t, 1)[0]; rec.EndReason != "target host certificate revoked" {
		t.Errorf("end reason %q", rec.EndReason)
	}
}

// liveSleep starts a session running sleep 30 through the bastion with the
// key at keyPath and waits until the bastion lists it live. done receives
// the session's end once (a test that reads it puts it back for the
// cleanup, which kills the session and waits for it); out collects what
// ssh printed.
func (e *env) liveSleep(t *testing.T, keyPath string) (done chan error, out *strings.Builder) {
	t.Helper()
	cmd := e.ssh(keyPath, e.login+"@db1", "-tt", "sleep 30")
	out = &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done = make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	testkit.WaitFor(t, 10*time.Second, "session started", func() bool { return len(e.srv.LiveSessions()) == 1 })
	return done, out
}
