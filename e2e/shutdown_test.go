package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// TestShutdownCutsOpenSessionsAndRecordsThem: a session still open when
// jitd gets SIGTERM is cut once --shutdown-timeout has passed, and its end
// is recorded (row and chained session.end) before the store closes, so
// that after a restart the session shows as ended and the trail verifies.
func TestShutdownCutsOpenSessionsAndRecordsThem(t *testing.T) {
	t.Parallel()
	w := newSecWorldStopped(t)
	const marker = "open-at-shutdown"
	t.Run("serve and stop with a session open", func(t *testing.T) {
		w.serve(t, "--shutdown-timeout", "1s")
		w.loginAll(t)
		ssh := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "a session left open", "--", "echo "+marker+"; sleep 120")
		testkit.WaitFor(t, 15*time.Second, "the session in jit sessions list --live", func() bool {
			for _, s := range secSessions(t, w.auditor, "--live") {
				if strings.Contains(s.Command, marker) && s.EndedAt == nil {
					return true
				}
			}
			return ssh.exited()
		})
		// SIGTERM: after the 1s shutdown timeout the bastion cuts the
		// session (so ssh exits) and jitd exits 0 within daemonStopTimeout.
		w.d.terminate(t)
		if r := ssh.wait(t, commandTimeout); r.Code == 0 || strings.Contains(r.Stdout, "sleep") {
			t.Errorf("jit ssh of the session open at shutdown: %v; want it cut", r)
		}
	})
	t.Run("after a restart", func(t *testing.T) {
		w.serve(t)
		w.loginAll(t)
		s := secSessionWith(t, w.auditor, marker, sessionWait)
		if s.Live || s.EndReason == "" {
			t.Errorf("session cut at shutdown: live %v, end reason %q; want it ended with a reason", s.Live, s.EndReason)
		}
		ends := auditList(t, w.auditor, "--event", "session.end")
		if _, ok := findEvent(ends, "session.end", func(e auditEvent) bool { return e.SessionID == s.ID }); !ok {
			t.Errorf("no session.end event for the session cut at shutdown %s", s.ID)
		}
		if v, r := secVerify(t, w.auditor); r.Code != 0 || !v.OK {
			t.Errorf("jit audit verify after a shutdown that cut a session: %+v\n%v", v, r)
		}
	})
}
