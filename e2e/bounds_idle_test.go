package e2e

import (
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestSessionIdleTimeout gives db1's role an idle_timeout of 4s: a session
// with no input is warned (half the timeout before, as it is under two
// minutes) and cut, recorded with end reason idle; a session whose
// engineer types every second outlives the timeout.
func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	const idle = 4 * time.Second
	w := newSecWorldStopped(t)
	pol := strings.Replace(secPolicy, "    max_ttl: 30m\n", "    max_ttl: 30m\n    idle_timeout: 4s\n", 1)
	w.d.serve(t, renderPolicy(t, pol, w.login, w.everyone(), map[string]*sshdtest.Server{"db1": w.db1, "db2": w.db2}), "--bastion", "127.0.0.1:0")
	w.loginAll(t)
	target := w.login + "@db1"
	mustRun(t, w.alice, "ssh", target, "--reason", "check the idle timeout", "--", "true")

	t.Run("no input: warned, then cut", func(t *testing.T) {
		start := time.Now()
		r := secRunStdin(t, w.alice, "", "ssh", target, "--", "echo idle-begin; sleep 30; echo idle-end")
		took := time.Since(start)
		if strings.Contains(r.Stdout, "idle-end") || took > idle+boundsSlack {
			t.Fatalf("idle session ran %v: %v; want it cut at the %v idle timeout", took, r, idle)
		}
		if !strings.Contains(r.Stderr, "will be closed in 2s (idle timeout 4s)") || !strings.Contains(r.Stderr, "session closed (idle timeout)") {
			t.Errorf("idle session's stderr %q; want the warning and the cut notice", r.Stderr)
		}
		s := secSessionWith(t, w.auditor, "idle-begin", sessionWait)
		if s.EndReason != "idle" {
			t.Errorf("idle session recorded with end reason %q, want idle", s.EndReason)
		}
	})

	t.Run("typing keeps it open", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin(t, "jit"), "ssh", target, "--", "for i in 1 2 3 4 5 6 7; do read line; done; echo typed-to-the-end")
		cmd.Env, cmd.Dir = w.alice.env(), w.alice.Home
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stdout, stderr testkit.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		for range 7 {
			time.Sleep(time.Second)
			_, _ = io.WriteString(stdin, "x\n")
		}
		_ = stdin.Close()
		err = cmd.Wait()
		if err != nil || !strings.Contains(stdout.String(), "typed-to-the-end") || strings.Contains(stderr.String(), "idle") {
			t.Errorf("session with input every second for 7s (idle timeout %v): %v\nstdout %q\nstderr %q", idle, err, &stdout, &stderr)
		}
	})
}
