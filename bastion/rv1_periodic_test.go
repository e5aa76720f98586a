package bastion

import (
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestRV1PeriodicCheckCoversOnwardCertificates (review rv1): revocation
// docs say a failed feed lookup "is logged and left to the periodic
// check", but the periodic check (watchRevocation) only asks about the
// engineer's certificate. A revoked target host certificate (or target
// certificate) whose one feed-triggered lookup failed, or whose
// cert.revoked arrived before the onward serials were indexed, is never
// looked at again: the session runs on. Here no notice comes at all and
// the periodic check runs every 200ms.
func TestRV1PeriodicCheckCoversOnwardCertificates(t *testing.T) {
	e := newEnv(t, envOptions{revokeEvery: 200 * time.Millisecond})
	key, _, _ := e.userCert(t, certSpec{name: "k", principal: e.login + "@db1", validFor: 5 * time.Minute, register: true})
	cmd := e.ssh(key, e.login+"@db1", "-tt", "sleep 30")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	testkit.WaitFor(t, 10*time.Second, "session started", func() bool { return len(e.srv.LiveSessions()) == 1 })
	e.backend.mu.Lock()
	e.backend.revokedHosts = map[uint64]bool{e.target.HostCert.Serial: true}
	e.backend.mu.Unlock()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("session to a target whose host certificate is revoked still running 5s later (periodic check every 200ms)")
	}
}
