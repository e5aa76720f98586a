package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"

	"github.com/jitssh/jitssh/internal/sshdtest"
)

// TestSessionWatchOutlivesWriteTimeout follows a live session with jit
// sessions watch from a daemon whose read and write timeouts are one
// second: the stream extends its deadline per write, so it runs for as
// long as the session (four seconds) and shows its end.
func TestSessionWatchOutlivesWriteTimeout(t *testing.T) {
	t.Parallel()
	w := newSecWorldStopped(t)
	w.d.serve(t, renderPolicy(t, secPolicy, w.login, w.everyone(), map[string]*sshdtest.Server{"db1": w.db1, "db2": w.db2}),
		"--bastion", "127.0.0.1:0", "--api-read-timeout", "1s", "--api-write-timeout", "1s")
	w.loginAll(t)
	ssh := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "watch the long job", "--", "echo live-begin; sleep 4; echo live-end")
	var id string
	testkit.WaitFor(t, 15*time.Second, "the session in jit sessions list --live", func() bool {
		for _, s := range secSessions(t, w.auditor, "--live") {
			if strings.Contains(s.Command, "live-begin") {
				id = s.ID
				return true
			}
		}
		return ssh.exited()
	})
	if id == "" {
		t.Fatalf("jit ssh ended before its session was listed as live: %v", ssh.wait(t, time.Second))
	}
	watch := start(t, w.auditor, "sessions", "watch", id)
	if r := ssh.wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "live-end") {
		t.Fatalf("jit ssh of the watched session: %v", r)
	}
	wr := watch.wait(t, 15*time.Second)
	if wr.Code != 0 || !strings.Contains(wr.Stdout, "live-end") || !strings.Contains(wr.Stderr, "session ended") {
		t.Errorf("jit sessions watch over a 1s write timeout: %v; want the whole session and an end notice", wr)
	}
}
