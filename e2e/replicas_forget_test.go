package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/jitssh/jitssh/internal/s3test"
	"github.com/jitssh/jitssh/internal/testkit"
)

// testForget, the last step of TestIssue12Replicas: jitd replica forget
// refuses replica C while it runs; once C is killed with a session live
// on its bastion and its heartbeat is stale, forget (run on A's data
// directory, with the shared store and bucket) ends that session as
// recording_lost (its recording never became an object), removes C from
// the registry, and verify names the session.
func (rs *replicaSet) testForget(t *testing.T) {
	id := rs.replicaID(t, replicaC)
	if out, err := rs.forget(t, replicaA, id); err == nil || !strings.Contains(out, "is up") {
		t.Errorf("jitd replica forget of the running replica C: %v\n%s; want it refused as up", err, out)
	}
	var b *background
	var sid string
	rs.through(-1, replicaC, func() {
		b = start(t, rs.w.bob, "ssh", rs.w.login+"@db1", "--reason", "a session C is forgotten in", "--", "echo forgotten-on-c; sleep 60")
		sid = waitLive(t, rs.w.auditor, "forgotten-on-c", b)
	})
	rs.kill(replicaC)
	b.wait(t, commandTimeout)
	var out string
	testkit.WaitFor(t, crashRestartTimeout, "jitd replica forget to take C once its heartbeat is stale", func() bool {
		var err error
		out, err = rs.forget(t, replicaA, id)
		return err == nil
	})
	if !strings.Contains(out, "ended session "+sid) || !strings.Contains(out, "recording_lost") {
		t.Errorf("jitd replica forget of C: %s; want session %s ended recording_lost", out, sid)
	}
	s := secSessionWith(t, rs.w.auditor, "forgotten-on-c", sessionWait)
	if s.Live || s.EndReason != "recording_lost" || s.RecordingSHA256 != "" {
		t.Errorf("the session of the forgotten replica: %+v; want ended recording_lost with no recording", s)
	}
	if reps := mustRun(t, rs.w.admin, "replicas"); strings.Contains(reps, id) {
		t.Errorf("jit replicas still lists the forgotten replica %s:\n%s", id, reps)
	}
	v, vr := secVerify(t, rs.w.auditor)
	if vr.Code != 0 || !v.OK || !slices.Contains(v.RecordingsLost, sid) {
		t.Errorf("jit audit verify after forget: %+v, want OK naming %s lost\n%v", v, sid, vr)
	}
}

// replicaID is replica i's ID: its --replica-id, or its DATA/replica-id.
func (rs *replicaSet) replicaID(t *testing.T, i int) string {
	t.Helper()
	if rs.replicaFlags {
		return "replica-" + string(rune('a'+i))
	}
	b, err := os.ReadFile(filepath.Join(rs.r[i].Data, "replica-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// forget runs jitd replica forget id on replica i's data directory with
// the replicas' store and bucket.
func (rs *replicaSet) forget(t *testing.T, i int, id string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin(t, "jitd"), "replica", "forget", "--data", rs.r[i].Data, "--store", rs.url,
		"--recordings", "s3://"+s3test.Bucket+"/jit", "--s3-endpoint", rs.s3.Endpoint, "--s3-region", "us-east-1", id)
	cmd.Env = append(os.Environ(), rs.s3.EnvList()...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
