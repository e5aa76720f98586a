package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/internal/testkit"
)

// Bounds of the replica tests.
const (
	burstPerEngineer = 20               // jit request calls of each of three engineers
	burstKillAfter   = 15               // certificates issued before replica 2 is killed
	burstLimit       = 2 * time.Minute  // the whole burst
	revokeWait       = 20 * time.Second // a revoked session's end on another replica (5 s poll)
	reloadWait       = 15 * time.Second // a reload through one replica reaching the others
)

// Replica indexes: A, B and C of issue 12.
const (
	replicaA = 0
	replicaB = 1
	replicaC = 2
)

// TestIssue12Replicas runs three jitd replicas on one PostgreSQL and one
// versitygw behind a round-robin balancer, through the binaries, with real
// sshd targets: a burst of requests across all three with one killed by
// SIGKILL in the middle (every certificate a client got is recorded once,
// the chain verifies), the killed replica restarted, a session on B
// revoked through A, a recording made on B replayed through C, the object
// store stopped mid-session, an enrolment through A used at C, a
// policy reload through A reaching B and C, and C killed again and
// forgotten by jitd replica forget. The subtests run in order on
// one replica set.
func TestIssue12Replicas(t *testing.T) {
	t.Parallel()
	rs := newReplicaSet(t)
	t.Run("set-up", rs.testSetUp)
	crashed := rs.startCrashSession(t)
	t.Run("burst with a replica killed", rs.testBurst)
	t.Run("killed replica restarted", func(st *testing.T) { rs.testRestart(st, t, crashed) })
	t.Run("revoked on A ends a session on B", rs.testRevoke)
	t.Run("live session on B watched through A", rs.testWatchAcross)
	t.Run("recording made on B replayed on C", rs.testReplayAcross)
	t.Run("object store stopped mid-session", rs.testObjectStoreOutage)
	t.Run("enrolment on A used at C", rs.testEnrolment)
	t.Run("policy reload on A reaches B and C", rs.testReload)
	t.Run("replica C killed and forgotten", rs.testForget)
}

// testSetUp checks what the operator's procedure promises: every replica
// serves the same known_hosts (one host CA), and a session through each
// replica's bastion is accepted by jit's ssh under that known_hosts.
func (rs *replicaSet) testSetUp(t *testing.T) {
	kh := rs.knownHosts(t, replicaA)
	if !strings.HasPrefix(kh, "@cert-authority * ") {
		t.Errorf("known_hosts of replica A does not start with the host CA:\n%s", kh)
	}
	for i := range rs.r[1:] {
		if other := rs.knownHosts(t, i+1); other != kh {
			t.Errorf("known_hosts of replica %d differs from A's:\n%s\nA:\n%s", i+1, other, kh)
		}
	}
	for i := range rs.r {
		marker := fmt.Sprintf("through-bastion-%d", i)
		rs.through(-1, i, func() {
			r := start(t, rs.w.alice, "ssh", rs.w.login+"@db1", "--reason", "check each bastion", "--", "echo "+marker).wait(t, commandTimeout)
			if r.Code != 0 || !strings.Contains(r.Stdout, marker) {
				t.Errorf("jit ssh through the bastion of replica %d: %v", i, r)
			}
		})
	}
	if rs.replicaFlags { // waits for `replica`: jit replicas
		out := mustRun(t, rs.w.admin, "replicas")
		for i := range rs.r {
			if id := "replica-" + string(rune('a'+i)); !strings.Contains(out, id) {
				t.Errorf("jit replicas does not list %s:\n%s", id, out)
			}
		}
	}
}

// startCrashSession starts a long session through replica C's bastion,
// which the burst's SIGKILL of C cuts.
func (rs *replicaSet) startCrashSession(t *testing.T) *background {
	t.Helper()
	var b *background
	rs.through(-1, replicaC, func() {
		b = start(t, rs.w.bob, "ssh", rs.w.login+"@db1", "--reason", "a session C crashes in", "--", "echo crash-begin; sleep 40; echo crash-end")
		id := waitLive(t, rs.w.auditor, "crash-begin", b)
		// Its output flushed to C's spool (a frame a second), so that the
		// recording the kill leaves has it to replay after C's restart.
		testkit.WaitFor(t, 15*time.Second, "the output of the session C crashes in in its recording", func() bool {
			out, _, _ := run(t, rs.w.auditor, "sessions", "export", id, "--format", "text")
			return strings.Contains(out, "crash-begin") || b.exited()
		})
	})
	return b
}

// waitLive waits for the session running marker to be live and returns
// its ID; the jit ssh b that should run it exiting first fails the test.
func waitLive(t testing.TB, auditor *engineer, marker string, b *background) string {
	t.Helper()
	var id string
	testkit.WaitFor(t, 15*time.Second, "the session "+marker+" to be live", func() bool {
		for _, s := range secSessions(t, auditor, "--live") {
			if strings.Contains(s.Command, marker) {
				id = s.ID
				return true
			}
		}
		return b.exited()
	})
	if id == "" {
		t.Fatalf("jit ssh of %s exited before its session was live: %v", marker, b.wait(t, time.Second))
	}
	return id
}

// issued is one certificate a client received in the burst.
type issued struct {
	who, serial string
}

// burstCall is one jit request of the burst and how it ended.
type burstCall struct {
	who     string
	started time.Time
	serial  string
	err     error
}

// testBurst runs 3 × burstPerEngineer jit request calls through the API
// balancer, kills replica C with SIGKILL once burstKillAfter certificates
// are out, and checks: every call that started after the kill succeeded,
// every certificate received is a cert.issued event of the chain, no
// serial is there twice, and jit audit verify passes.
func (rs *replicaSet) testBurst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), burstLimit)
	defer cancel()
	jit := bin(t, "jit")
	calls := make(chan burstCall, 3*burstPerEngineer)
	var wg sync.WaitGroup
	for _, e := range []*engineer{rs.w.alice, rs.w.bob, rs.dave} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range burstPerEngineer {
				c := burstCall{who: e.Name, started: time.Now()}
				c.serial, c.err = requestSerial(ctx, jit, e, rs.w.login, fmt.Sprintf("burst %s %d", e.Name, n))
				calls <- c
			}
		}()
	}
	var got []burstCall
	var killedAt time.Time
	before := rs.api.spliced(replicaC)
	for len(got) < 3*burstPerEngineer {
		select {
		case c := <-calls:
			got = append(got, c)
		case <-ctx.Done():
			t.Fatalf("the burst did not finish within %v: %d of %d calls", burstLimit, len(got), 3*burstPerEngineer)
		}
		if killedAt.IsZero() && okCount(got) >= burstKillAfter {
			rs.kill(replicaC)
			killedAt = time.Now()
			onC := rs.api.spliced(replicaC) - before
			if onC == 0 {
				t.Errorf("replica C got none of the burst's first %d requests before it was killed", len(got))
			}
			t.Logf("replica C killed after %d requests, %d of them through it", len(got), onC)
		}
	}
	wg.Wait()
	if killedAt.IsZero() {
		t.Fatalf("only %d of %d requests got a certificate, so replica C was never killed", okCount(got), len(got))
	}
	var certs []issued
	failedBefore := 0
	for _, c := range got {
		switch {
		case c.err == nil:
			certs = append(certs, issued{c.who, c.serial})
		case c.started.After(killedAt):
			t.Errorf("%s's request started %v after the kill failed: %v", c.who, c.started.Sub(killedAt), c.err)
		default:
			failedBefore++
			t.Logf("%s's request in flight at the kill failed (allowed): %v", c.who, c.err)
		}
	}
	t.Logf("burst: %d certificates, %d requests in flight at the kill failed", len(certs), failedBefore)
	rs.checkRecorded(t, certs)
}

// requestSerial runs jit request --format json as e and returns the serial
// of the certificate it got; it never fails the test (it runs outside the
// test's goroutine).
func requestSerial(ctx context.Context, jit string, e *engineer, login, reason string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, jit, "request", "db1", "--login", login, "--reason", reason, "--format", "json")
	cmd.Env, cmd.Dir = e.env(), e.Home
	var stdout, stderr testkit.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("jit request: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	var g grantOutput
	if err := json.Unmarshal([]byte(stdout.String()), &g); err != nil || g.Serial == "" {
		return "", fmt.Errorf("jit request printed no serial (%v): %s", err, stdout.String())
	}
	return g.Serial, nil
}

func okCount(cs []burstCall) int {
	n := 0
	for _, c := range cs {
		if c.err == nil {
			n++
		}
	}
	return n
}

// checkRecorded checks that each certificate is one cert.issued event,
// that no serial is issued twice, and that the chain verifies.
func (rs *replicaSet) checkRecorded(t *testing.T, certs []issued) {
	t.Helper()
	events := map[string]int{}
	for _, typ := range []string{"cert.issued", "host_cert.issued"} {
		for _, ev := range auditList(t, rs.w.auditor, "--event", typ) {
			if ev.Serial != "" {
				events[ev.Serial]++
			}
		}
	}
	for s, n := range events {
		if n > 1 {
			t.Errorf("serial %s issued %d times", s, n)
		}
	}
	for _, c := range certs {
		if events[c.serial] != 1 {
			t.Errorf("%s received certificate %s, which the chain records %d times", c.who, c.serial, events[c.serial])
		}
	}
	if v, vr := secVerify(t, rs.w.auditor); vr.Code != 0 || !v.OK {
		t.Fatalf("jit audit verify after the burst: %+v\n%v", v, vr)
	}
}

// testRestart restarts the killed replica C, for the rest of top, while
// a session is live on A: C rejoins (a session through it works), the
// session its crash cut is ended by C's start as jitd_stopped with its
// spool file's digest, uploaded and checked against it (the stored object
// has that digest, verify checks it, replay reads it), and A's live
// session is left alone by C's start.
func (rs *replicaSet) testRestart(t, top *testing.T, crashed *background) {
	if r := crashed.wait(t, commandTimeout); r.Code == 0 || strings.Contains(r.Stdout, "crash-end") {
		t.Errorf("jit ssh of the session through the killed replica: %v; want it cut", r)
	}
	if rs.replicaFlags {
		// A restart within the heartbeat's freshness window (15 s) waits
		// for the killed process's beat to go stale (its twin check),
		// longer than a start is given: start C once the registry says
		// it is down, as an operator restarting it would find it.
		testkit.WaitFor(t, 30*time.Second, "replica C down in jit replicas", func() bool {
			r := start(t, rs.w.admin, "replicas").wait(t, commandTimeout)
			for _, line := range strings.Split(r.Stdout, "\n") {
				if f := strings.Fields(line); len(f) > 1 && f[0] == "replica-c" {
					return f[1] == "down"
				}
			}
			return false
		})
	}
	var onA *background
	rs.through(-1, replicaA, func() {
		// 30 s: longer than C's start, which waits out its stale
		// heartbeat (up to the registry's 15 s TTL) before it serves.
		onA = start(t, rs.dave, "ssh", rs.w.login+"@db1", "--reason", "live on A while C restarts", "--", "echo live-on-a; sleep 30; echo live-on-a-end")
		waitLive(t, rs.w.auditor, "live-on-a", onA)
	})
	rs.r[replicaC].StartTimeout = crashRestartTimeout // it first waits out its killed process's heartbeat
	rs.serve(top, replicaC)                           // it serves the later subtests too
	waitSpoolEmpty(t, filepath.Join(rs.r[replicaC].Data, "recordings"))
	// C's start ended the session its crash cut, with the digest of its
	// spool file; the upload stored exactly that.
	crashedID := ""
	for _, s := range secSessions(t, rs.w.auditor) {
		if strings.Contains(s.Command, "crash-begin") {
			crashedID = s.ID
			sum, size := storedObject(t, rs.s3, s.ID)
			if s.Live || s.EndReason != "jitd_stopped" || s.ExitStatus != -1 || s.RecordingSHA256 != sum || s.RecordingSize != size || size == 0 {
				t.Errorf("the session C crashed in: %+v; want ended jitd_stopped, exit -1, with the stored object's SHA-256 %s and size %d", s, sum, size)
			}
		}
	}
	if crashedID == "" {
		t.Errorf("no session of the replica that crashed is listed")
	}
	if onA.exited() {
		t.Fatalf("the session on A ended before C's start could be checked against it: %v", onA.wait(t, time.Second))
	}
	live := false
	for _, s := range secSessions(t, rs.w.auditor, "--live") {
		live = live || strings.Contains(s.Command, "live-on-a")
	}
	if !live {
		t.Errorf("the session live on replica A is no longer live once C restarted")
	}
	if r := onA.wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "live-on-a-end") {
		t.Errorf("the session on A while C restarted: %v", r)
	}
	s := secSessionWith(t, rs.w.auditor, "live-on-a", sessionWait)
	if s.EndReason != "" && s.EndReason != "closed" {
		t.Errorf("the session on A ended as %q, want closed", s.EndReason)
	}
	rs.through(replicaC, replicaC, func() {
		r := start(t, rs.w.alice, "ssh", rs.w.login+"@db1", "--reason", "through C after its restart", "--", "echo c-rejoined").wait(t, commandTimeout)
		if r.Code != 0 || !strings.Contains(r.Stdout, "c-rejoined") {
			t.Errorf("jit ssh through the restarted replica C: %v", r)
		}
	})
	secSessionWith(t, rs.w.auditor, "c-rejoined", sessionWait)
	if v, vr := secVerify(t, rs.w.auditor); vr.Code != 0 || !v.OK || len(v.RecordingsLost) != 0 || v.Recordings < 1 {
		t.Fatalf("jit audit verify after C restarted: %+v, want OK, the crashed session's recording checked, none lost\n%v", v, vr)
	}
	readBack(t, rs.w, crashedID, "crash-begin", false)
}

// testRevoke revokes, through replica A's API, the certificate of a live
// session on replica B's bastion, and waits for the session to end.
func (rs *replicaSet) testRevoke(t *testing.T) {
	// dave's certificate: the others go on using theirs.
	dave, login := rs.dave, rs.w.login
	var s *background
	rs.through(-1, replicaB, func() {
		s = start(t, dave, "ssh", login+"@db1", "--reason", "revocation across replicas", "--", "echo rv-begin; sleep 50; echo rv-end")
		waitLive(t, rs.w.auditor, "rv-begin", s)
	})
	serial := readCert(t, filepath.Join(dave.Home, "state", "keys", login+"@db1-cert.pub")).Serial
	var revokedAt time.Time
	rs.through(replicaA, -1, func() {
		revokedAt = time.Now()
		mustRun(t, rs.w.admin, "admin", "revoke", strconv.FormatUint(serial, 10), "--reason", "laptop stolen")
	})
	r := s.wait(t, revokeWait)
	took := time.Since(revokedAt)
	if strings.Contains(r.Stdout, "rv-end") {
		t.Fatalf("the session on B ran to its end after the revocation on A: %v", r)
	}
	t.Logf("revoked through A: the session on B ended %v later", took.Round(10*time.Millisecond))
	if got := secSessionWith(t, rs.w.auditor, "rv-begin", sessionWait); got.EndReason == "" || got.EndReason == "closed" {
		t.Errorf("the revoked session ended as %q, want a cut", got.EndReason)
	}
}

// testWatchAcross follows, through replica A's API, a live session on
// replica B's bastion: jit sessions watch shows its output while it runs
// and its end. It waits for `replica` (the watch proxied to the session's
// owner); main's jitd finds another replica's recording only once it is
// uploaded at the session's end.
func (rs *replicaSet) testWatchAcross(t *testing.T) {
	if !rs.replicaFlags {
		t.Skip("waits for replica: jitd has no --replica-id, so no watch of another replica's live session")
	}
	var s *background
	var id string
	rs.through(-1, replicaB, func() {
		s = start(t, rs.w.alice, "ssh", rs.w.login+"@db1", "--reason", "a session watched across replicas", "--", "echo watch-begin; sleep 4; echo watch-end")
		id = waitLive(t, rs.w.auditor, "watch-begin", s)
	})
	var watch *background
	rs.through(replicaA, -1, func() { watch = start(t, rs.w.auditor, "sessions", "watch", id) })
	testkit.WaitFor(t, 10*time.Second, "jit sessions watch through A to show the live output on B", func() bool {
		return strings.Contains(watch.stdout.String(), "watch-begin") || watch.exited()
	})
	if s.exited() || strings.Contains(watch.stdout.String(), "watch-end") {
		t.Errorf("watch through A showed the session on B only after it ended: %q", watch.stdout)
	}
	if r := s.wait(t, commandTimeout); r.Code != 0 {
		t.Fatalf("jit ssh through B: %v", r)
	}
	if wr := watch.wait(t, 15*time.Second); wr.Code != 0 || !strings.Contains(wr.Stdout, "watch-end") || !strings.Contains(wr.Stderr, "session ended") {
		t.Errorf("jit sessions watch through A after the session on B ended: %v", wr)
	}
}

// testReplayAcross records a session through replica B and replays,
// exports and verifies it through replica C, once B uploaded it.
func (rs *replicaSet) testReplayAcross(t *testing.T) {
	rs.through(-1, replicaB, func() {
		if r := start(t, rs.w.alice, "ssh", rs.w.login+"@db1", "--reason", "a recording made on B", "--", "echo made-on-b").wait(t, commandTimeout); r.Code != 0 {
			t.Fatalf("jit ssh through B: %v", r)
		}
	})
	s := secSessionWith(t, rs.w.auditor, "made-on-b", sessionWait)
	waitSpoolEmpty(t, filepath.Join(rs.r[replicaB].Data, "recordings"))
	if sum, size := storedObject(t, rs.s3, s.ID); sum != s.RecordingSHA256 || size != s.RecordingSize {
		t.Fatalf("stored object SHA-256 %s size %d; the chain's %s size %d", sum, size, s.RecordingSHA256, s.RecordingSize)
	}
	rs.through(replicaC, -1, func() { readBack(t, rs.w, s.ID, "made-on-b", true) })
}

// testObjectStoreOutage stops the object store in the middle of a session
// through replica A: the session goes on, its recording waits in A's spool
// (readable through A), and once the store is back it is uploaded and
// reads back through B.
func (rs *replicaSet) testObjectStoreOutage(t *testing.T) {
	var s *background
	rs.through(-1, replicaA, func() {
		s = start(t, rs.w.alice, "ssh", rs.w.login+"@db1", "--reason", "object store outage", "--", "echo mid-begin; sleep 3; echo mid-end")
		waitLive(t, rs.w.auditor, "mid-begin", s)
	})
	rs.s3.Stop()
	if r := s.wait(t, commandTimeout); r.Code != 0 || !strings.Contains(r.Stdout, "mid-end") {
		t.Fatalf("jit ssh with the object store down: %v", r)
	}
	got := secSessionWith(t, rs.w.auditor, "mid-begin", sessionWait)
	spool := filepath.Join(rs.r[replicaA].Data, "recordings")
	if n := spoolCount(t, spool); n != 1 {
		t.Errorf("A's spool holds %d recordings with the object store down, want 1", n)
	}
	rs.through(replicaA, -1, func() { readBack(t, rs.w, got.ID, "mid-end", false) })
	rs.s3.Start()
	waitSpoolEmpty(t, spool)
	if sum, _ := storedObject(t, rs.s3, got.ID); sum != got.RecordingSHA256 {
		t.Fatalf("stored object SHA-256 %s, the chain's %s", sum, got.RecordingSHA256)
	}
	rs.through(replicaB, -1, func() { readBack(t, rs.w, got.ID, "mid-end", true) })
}

// testEnrolment enrols erin through replica A's API and has her log in and
// get a certificate through replica C (it looks for enrolments every 5 s).
func (rs *replicaSet) testEnrolment(t *testing.T) {
	erin := newEngineer(t, "erin")
	rs.through(replicaA, -1, func() {
		mustRun(t, rs.w.admin, "admin", "user", "add", "erin", "--key", pubFile(t, erin), "--group", "dev")
	})
	rs.through(replicaC, -1, func() {
		testkit.WaitFor(t, enrolWait, "replica C to accept erin's key enrolled through A", func() bool {
			_, _, code := run(t, erin, "login", "--ca", "https://"+rs.api.Addr(), "--fingerprint", rs.r[0].Fingerprint, "--user", "erin", "-i", erin.Key)
			return code == 0
		})
		mustRun(t, erin, "request", "db1", "--login", rs.w.login, "--reason", "erin's first request, at C")
	})
}

// testReload writes a new policy (prod-db also allows the login backup) to
// every replica's data directory, as configuration management would, and
// reloads it through A only: A honours it at once, B and C within
// reloadWait. The last part waits for `feed` (the reload broadcast).
func (rs *replicaSet) testReload(t *testing.T) {
	login := rs.w.login
	newPolicy := strings.Replace(rs.policy, "logins: ["+login+"]", "logins: ["+login+", backup]", 1)
	if newPolicy == rs.policy {
		t.Fatal("the policy has no prod-db logins line to change")
	}
	var stderr string
	request := func(i int) int {
		var code int
		rs.through(i, -1, func() {
			_, stderr, code = run(t, rs.w.alice, "request", "db1", "--login", "backup", "--reason", "take a manual backup")
		})
		return code
	}
	for i := range rs.r {
		if code := request(i); code != 3 {
			t.Fatalf("login backup through replica %d before the reload: exit %d, want 3: %s", i, code, stderr)
		}
		if err := os.WriteFile(filepath.Join(rs.r[i].Data, "policy.yaml"), []byte(newPolicy), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	rs.through(replicaA, -1, func() {
		if out := mustRun(t, rs.w.admin, "admin", "reload"); !strings.Contains(out, "policy reloaded") {
			t.Errorf("jit admin reload printed %q", out)
		}
	})
	if code := request(replicaA); code != 0 {
		t.Fatalf("login backup through A after its reload: exit %d: %s", code, stderr)
	}
	reloads := auditList(t, rs.w.auditor, "--event", "policy.reload")
	if len(reloads) == 0 || reloads[len(reloads)-1].Data["instance"] == "" {
		t.Skip("waits for feed: the policy.reload event has no instance, so no reload broadcast to B and C")
	}
	for _, i := range []int{replicaB, replicaC} {
		testkit.WaitFor(t, reloadWait, fmt.Sprintf("replica %d to honour the policy reloaded through A", i), func() bool { return request(i) == 0 })
	}
}
