package e2e

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// sessionWait bounds how long a finished session takes to show as ended in
// jit sessions list (the bastion commits the session row as it closes).
const sessionWait = 15 * time.Second

// TestIssue3SessionsThroughBastion is the acceptance test of issue 3
// through the binaries: jit ssh through jitd's bastion to a real sshd,
// exec and pty sessions recorded with their command, exit status and a
// digest that jit audit verify checks; a live session listed and followed;
// a revoked certificate refused and audited; the engineer's own
// certificate refused by the target.
func TestIssue3SessionsThroughBastion(t *testing.T) {
	t.Parallel()
	w := newSecWorld(t)
	alice, auditor, login := w.alice, w.auditor, w.login
	keyFile := filepath.Join(alice.Home, "state", "keys", login+"@db1")

	t.Run("exec", func(t *testing.T) {
		r := start(t, alice, "ssh", login+"@db1", "--reason", "check the disk space", "--", "echo hello-exec; exit 7").wait(t, commandTimeout)
		if r.Code != 7 || !strings.Contains(r.Stdout, "hello-exec") {
			t.Fatalf("jit ssh -- 'echo hello-exec; exit 7': %v; want exit 7 and the output", r)
		}
		s := secSessionWith(t, auditor, "hello-exec", sessionWait)
		cert := readCert(t, keyFile+"-cert.pub")
		if s.User != "alice" || s.Host != "db1" || s.Login != login || s.ExitStatus != 7 {
			t.Errorf("session %+v, want alice as %s on db1 with exit status 7", s, login)
		}
		if s.Serial != cert.Serial || s.TargetSerial == 0 || s.TargetSerial == s.Serial {
			t.Errorf("session serials user %d target %d, want the grant's %d and a distinct per-session one", s.Serial, s.TargetSerial, cert.Serial)
		}
		if len(s.RecordingSHA256) != 64 || s.RecordingSize == 0 || s.BytesOut == 0 {
			t.Errorf("session recording sha256 %q size %d, bytes out %d; want a digest, a size and output", s.RecordingSHA256, s.RecordingSize, s.BytesOut)
		}
		v, vr := secVerify(t, auditor)
		if vr.Code != 0 || !v.OK || v.Recordings < 1 {
			t.Errorf("jit audit verify after a session: %+v\n%v", v, vr)
		}
		text := mustRun(t, auditor, "sessions", "export", s.ID, "--format", "text")
		if !strings.Contains(text, "hello-exec") {
			t.Errorf("recording of %s lacks the output:\n%s", s.ID, text)
		}
	})

	t.Run("pty", func(t *testing.T) {
		r := start(t, alice, "ssh", "-t", login+"@db1", "--", "echo hi-pty; exit 3").wait(t, commandTimeout)
		if r.Code != 3 || !strings.Contains(r.Stdout, "hi-pty") {
			t.Fatalf("jit ssh -t -- 'echo hi-pty; exit 3': %v; want exit 3 and the output", r)
		}
		s := secSessionWith(t, auditor, "hi-pty", sessionWait)
		if s.ExitStatus != 3 {
			t.Errorf("pty session exit status %d, want 3", s.ExitStatus)
		}
		text := mustRun(t, auditor, "sessions", "export", s.ID, "--format", "text")
		if !strings.Contains(text, "hi-pty") {
			t.Errorf("recording of pty session %s lacks the output:\n%s", s.ID, text)
		}
	})

	t.Run("live session listed and watched", func(t *testing.T) {
		ssh := start(t, alice, "ssh", login+"@db1", "--", "echo live-begin; sleep 4; echo live-end")
		var id string
		testkit.WaitFor(t, 10*time.Second, "the session in jit sessions list --live", func() bool {
			for _, s := range secSessions(t, auditor, "--live") {
				if strings.Contains(s.Command, "live-begin") && s.Live && s.EndedAt == nil {
					id = s.ID
					return true
				}
			}
			return ssh.exited()
		})
		if id == "" {
			t.Fatalf("jit ssh ended before its session was listed as live: %v", ssh.wait(t, time.Second))
		}
		watch := start(t, auditor, "sessions", "watch", id)
		testkit.WaitFor(t, 10*time.Second, "jit sessions watch to show the live output", func() bool {
			return strings.Contains(watch.stdout.String(), "live-begin") || watch.exited()
		})
		if ssh.exited() {
			t.Errorf("the session ended before watch showed its first output; watch did not follow it live")
		}
		if strings.Contains(watch.stdout.String(), "live-end") {
			t.Errorf("watch showed output the session had not produced yet")
		}
		if r := ssh.wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "live-end") {
			t.Fatalf("jit ssh of the live session: %v", r)
		}
		wr := watch.wait(t, 15*time.Second)
		if wr.Code != 0 || !strings.Contains(wr.Stdout, "live-end") || !strings.Contains(wr.Stderr, "session ended") {
			t.Errorf("jit sessions watch after the session ended: %v; want the rest of the output and an end notice", wr)
		}
		testkit.WaitFor(t, sessionWait, "the ended session to leave jit sessions list --live", func() bool {
			for _, s := range secSessions(t, auditor, "--live") {
				if s.ID == id {
					return false
				}
			}
			return true
		})
	})

	t.Run("own certificate refused by the target", func(t *testing.T) {
		if out, err := sshTrue(t, w.db1, keyFile); err == nil {
			t.Errorf("the target sshd accepted the engineer's own certificate (only the target CA may open it):\n%s", out)
		}
	})

	t.Run("revoked certificate refused", func(t *testing.T) {
		serial := readCert(t, keyFile+"-cert.pub").Serial
		s := strconv.FormatUint(serial, 10)
		if _, stderr, code := run(t, alice, "admin", "revoke", s, "--reason", "laptop stolen"); code != 3 {
			t.Errorf("alice revoking: exit %d, stderr %q; want 3 (admins only)", code, stderr)
		}
		if out := mustRun(t, w.admin, "admin", "revoke", s, "--reason", "laptop stolen"); !strings.Contains(out, "revoked "+s) {
			t.Errorf("jit admin revoke printed %q", out)
		}
		r := start(t, alice, "ssh", login+"@db1", "--", "echo after-revoke").wait(t, commandTimeout)
		if r.Code == 0 || strings.Contains(r.Stdout, "after-revoke") {
			t.Fatalf("jit ssh with a revoked certificate: %v; want a refusal", r)
		}
		// Before authentication the bastion knows only the SSH user
		// LOGIN@HOST; the message names the revoked serial.
		evs := auditList(t, auditor, "--event", "session.rejected")
		if _, ok := findEvent(evs, "session.rejected", func(ev auditEvent) bool {
			return ev.Host == "db1" && strings.Contains(ev.Message, "serial "+s+" is revoked")
		}); !ok {
			t.Errorf("no session.rejected event on db1 naming the revocation of serial %s: %+v", s, evs)
		}
		if _, ok := findEvent(auditList(t, auditor, "--event", "cert.revoked"), "cert.revoked", func(ev auditEvent) bool {
			return ev.Serial == s && ev.Actor == "admin"
		}); !ok {
			t.Errorf("no cert.revoked event for serial %s by admin", s)
		}
	})
}
