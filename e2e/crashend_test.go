package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// crashRestartTimeout bounds a restart right after a SIGKILL: the new
// process first waits out the killed one's heartbeat (a replica TTL, 15 s).
const crashRestartTimeout = 45 * time.Second

// TestCrashEndsSessionsAtRestart: jitd killed with SIGKILL while two
// sessions are live, one of them with its spool file then removed and the
// other with a torn frame left at its end. At the restart the first ends
// as jitd_stopped with the digest of its spool file cut back to its last
// whole frame (replay and export read it, verify checks and counts it),
// the second as recording_lost, which verify names. Then jitd replica
// forget refuses the replica while it runs; after another SIGKILL, once
// its heartbeat is stale, forget ends the session it left live as
// recording_lost, records replica.forgotten, and the restart finds nothing
// left to end.
func TestCrashEndsSessionsAtRestart(t *testing.T) {
	t.Parallel()
	w := newSecWorldStopped(t)
	w.serve(t)
	w.loginAll(t)
	kept := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "crash kept session", "--", "echo crash-kept-out; sleep 120")
	lost := start(t, w.bob, "ssh", w.login+"@db1", "--reason", "crash lost session", "--", "echo crash-lost-out; sleep 120")
	keptID, lostID := waitLive(t, w.auditor, "crash-kept", kept), waitLive(t, w.auditor, "crash-lost", lost)
	keptPath, lostPath := spoolFile(t, w.d, keptID), spoolFile(t, w.d, lostID)
	// The output is in the recording once a frame with it is flushed.
	testkit.WaitFor(t, 15*time.Second, "the kept session's output in its recording", func() bool {
		return strings.Contains(mustRun(t, w.auditor, "sessions", "export", keptID, "--format", "text"), "crash-kept-out")
	})
	killDaemon(w.d)
	if r := kept.wait(t, commandTimeout); r.Code == 0 {
		t.Errorf("jit ssh through the killed jitd: %v; want it cut", r)
	}
	lost.wait(t, commandTimeout)
	whole, err := os.ReadFile(keptPath)
	if err != nil {
		t.Fatal(err)
	}
	// A frame cut after its header, as a crash in the middle of a write
	// leaves it.
	if err := os.WriteFile(keptPath, append(slices.Clone(whole), 0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x10, 0x81), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(lostPath); err != nil {
		t.Fatal(err)
	}

	w.d.StartTimeout = crashRestartTimeout
	w.serve(t)
	w.loginAll(t) // the API listens on a new port
	k, l := secSessionWith(t, w.auditor, "crash-kept", sessionWait), secSessionWith(t, w.auditor, "crash-lost", sessionWait)
	sum := sha256.Sum256(whole)
	if k.Live || k.EndReason != "jitd_stopped" || k.RecordingSHA256 != hex.EncodeToString(sum[:]) || k.RecordingSize != int64(len(whole)) ||
		k.ExitStatus != -1 || k.BytesOut < int64(len("crash-kept-out")) {
		t.Errorf("session left live by the kill: %+v; want ended jitd_stopped, exit -1, its output counted, recording SHA-256 %x over %d bytes (the torn frame cut)",
			k, sum, len(whole))
	}
	if l.Live || l.EndReason != "recording_lost" || l.RecordingSHA256 != "" || l.RecordingSize != 0 {
		t.Errorf("session whose spool file was removed: %+v; want ended recording_lost with no recording", l)
	}
	readBack(t, w, keptID, "crash-kept-out", false)
	v, vr := secVerify(t, w.auditor)
	if vr.Code != 0 || !v.OK || v.Recordings != 1 || !slices.Equal(v.RecordingsLost, []string{lostID}) {
		t.Errorf("jit audit verify after the restart: %+v, want OK with 1 recording checked and %s lost\n%v", v, lostID, vr)
	}
	if out := mustRun(t, w.auditor, "audit", "verify"); !strings.Contains(out, "recording lost: session "+lostID) {
		t.Errorf("jit audit verify does not name the lost recording of %s:\n%s", lostID, out)
	}
	testForgetAfterCrash(t, w, []string{lostID})
}

// testForgetAfterCrash: jitd replica forget refuses w's running replica,
// and ends the session it left live once it is killed and down.
func testForgetAfterCrash(t *testing.T, w *secWorld, lost []string) {
	idb, err := os.ReadFile(filepath.Join(w.d.Data, "replica-id"))
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSpace(string(idb))
	if out, err := forget(t, w.d, id); err == nil || !strings.Contains(out, "is up") {
		t.Errorf("jitd replica forget of the running replica: %v\n%s; want it refused as up", err, out)
	}
	b := start(t, w.alice, "ssh", w.login+"@db1", "--reason", "forgotten session", "--", "echo crash-forgotten; sleep 120")
	fid := waitLive(t, w.auditor, "crash-forgotten", b)
	killDaemon(w.d)
	b.wait(t, commandTimeout)
	var out string
	testkit.WaitFor(t, crashRestartTimeout, "jitd replica forget to take the killed replica once its heartbeat is stale", func() bool {
		out, err = forget(t, w.d, id)
		return err == nil
	})
	if !strings.Contains(out, "ended session "+fid) || !strings.Contains(out, "recording_lost") {
		t.Errorf("jitd replica forget: %s; want session %s ended recording_lost", out, fid)
	}
	w.d.StartTimeout = 0 // forgotten: no heartbeat to wait out
	w.serve(t)
	w.loginAll(t)
	f := secSessionWith(t, w.auditor, "crash-forgotten", sessionWait)
	if f.Live || f.EndReason != "recording_lost" {
		t.Errorf("session of the forgotten replica: %+v; want ended recording_lost", f)
	}
	if _, ok := findEvent(auditList(t, w.auditor, "--event", "replica.forgotten"), "replica.forgotten", func(auditEvent) bool { return true }); !ok {
		t.Errorf("no replica.forgotten event")
	}
	v, vr := secVerify(t, w.auditor)
	if want := append(lost, fid); vr.Code != 0 || !v.OK || !slices.Equal(v.RecordingsLost, want) {
		t.Errorf("jit audit verify after forget: %+v, want OK with %v lost\n%v", v, want, vr)
	}
}

// spoolFile is the recording file of session id under d's spool.
func spoolFile(t *testing.T, d *daemon, id string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(d.Data, "recordings", "*", "*", "*", id+".cast.zst"))
	if err != nil || len(m) != 1 {
		t.Fatalf("recording of session %s in the spool: %v, %v", id, m, err)
	}
	return m[0]
}

// killDaemon ends d with SIGKILL, as a crash would, and waits for it.
func killDaemon(d *daemon) {
	d.terminated = true
	_ = d.cmd.Process.Kill()
	<-d.done
}

// forget runs jitd replica forget id on d's data directory.
func forget(t testing.TB, d *daemon, id string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin(t, "jitd"), "replica", "forget", "--data", d.Data, id).CombinedOutput()
	return string(out), err
}
