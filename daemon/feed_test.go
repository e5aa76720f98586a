package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/pgtest"
	"github.com/jitssh/jitssh/internal/sshdtest"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/policy"
)

// feedWait bounds each wait for a change to reach the other replica. It
// is below the backstops (the bastion's 30s lookup while the feed is
// healthy, housekeeping's 30s refresh): what arrives in time came by the
// feed.
const feedWait = 20 * time.Second

// replicas are two daemons on one PostgreSQL database, with one data
// directory copied (the same keys), as docs/scale-out.md deploys them.
type replicas struct {
	url        string
	dirA, dirB string
}

// newReplicas initialises the data directory and the database, writes
// policyText (the demo policy if empty) to both copies and returns them
// unstarted.
func newReplicas(t *testing.T, policyText string) replicas {
	t.Helper()
	srv, err := pgtest.Start()
	pgtest.Need(t, srv, err)
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	r := replicas{url: srv.Database(t), dirA: filepath.Join(t.TempDir(), "a"), dirB: filepath.Join(t.TempDir(), "b")}
	if _, err := (Layout{Dir: r.dirA, Store: r.url}).Init(context.Background(), ca.Ed25519, []string{"127.0.0.1"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", r.dirA, r.dirB).CombinedOutput(); err != nil {
		t.Fatalf("copy the data directory: %v: %s", err, out)
	}
	if policyText == "" {
		policyText = string(policy.Demo())
	}
	for _, dir := range []string{r.dirA, r.dirB} {
		if err := os.WriteFile(Layout{Dir: dir}.PolicyFile(), []byte(policyText), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// serve starts the replica on dir and waits for its feed's LISTEN
// connection.
func (r replicas) serve(t *testing.T, dir string) *serving {
	t.Helper()
	s := serveConfig(t, Config{Dir: dir, Store: r.url})
	testkit.WaitFor(t, feedWait, "feed LISTEN connection up", func() bool { return s.d.feed.feed.Health().Listening })
	return s
}

var admin = grant.Caller{User: "secops-admin"}

func enrolment(t *testing.T, name string) grant.Enrolment {
	return grant.Enrolment{Name: name, Groups: []string{"dev"}, Keys: []string{string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey()))}}
}

// TestFeedCarriesEnrolmentsAndCoalesces: a user enrolled through A is in
// B's policy in force at once; 300 enrolments committed while B's feed
// was behind are one or two refreshes there, not 300.
func TestFeedCarriesEnrolmentsAndCoalesces(t *testing.T) {
	r := newReplicas(t, "")
	a, b := r.serve(t, r.dirA), r.serve(t, r.dirB)
	ctx := context.Background()
	if _, err := a.d.admin.Enrol(ctx, admin, enrolment(t, "zoe")); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, feedWait, "zoe in B's policy", func() bool { _, ok := b.d.policy.Current().User("zoe"); return ok })

	// A third replica's feed starts at the head, then 300 enrolments
	// commit before it first reads.
	// On B's data directory but under its own replica id: B's would be
	// refused as a twin of the running B.
	c, err := New(ctx, Config{Dir: r.dirB, Store: r.url, APIAddr: "127.0.0.1:0", Logger: b.d.log, ReplicaID: "feed-test-c"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const burst = 300
	for i := range burst {
		if _, err := a.d.admin.Enrol(ctx, admin, enrolment(t, fmt.Sprintf("u%03d", i))); err != nil {
			t.Fatal(err)
		}
	}
	fctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.feed.run(fctx); close(done) }()
	defer func() { stop(); <-done }()
	head, err := a.d.store.HeadSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, feedWait, "C's feed past the burst", func() bool { return c.feed.feed.Health().Cursor >= head })
	testkit.WaitFor(t, feedWait, "the burst in C's policy", func() bool {
		_, ok := c.policy.Current().User(fmt.Sprintf("u%03d", burst-1))
		return ok
	})
	if n := c.feed.refreshes.Load(); n > 3 {
		t.Errorf("%d refreshes for a burst of %d enrolments (pages of %d), want at most 3", n, burst, audit.DefaultFeedPage)
	}
}

// TestFeedBroadcastsPolicyReload: a reload through A makes B re-read its
// own file once (recorded with cause_seq and B's instance), and neither
// propagates that again.
func TestFeedBroadcastsPolicyReload(t *testing.T) {
	r := newReplicas(t, "")
	a, b := r.serve(t, r.dirA), r.serve(t, r.dirB)
	ctx := context.Background()
	edited := testkit.Edit(t, string(policy.Demo()), "  carol: {groups: [dev], keys: []}\n", "")
	if err := os.WriteFile(Layout{Dir: r.dirB}.PolicyFile(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, feedWait, "carol gone from B's policy", func() bool { _, ok := b.d.policy.Current().User("carol"); return !ok })
	// Both feeds read past every reload before the count.
	head, err := a.d.store.HeadSeq(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*serving{a, b} {
		testkit.WaitFor(t, feedWait, "feed at the head", func() bool { return s.d.feed.feed.Health().Cursor >= head })
	}
	evs, err := a.d.store.Events(ctx, audit.EventFilter{Type: "policy.reload"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("%d policy.reload events, want 2 (A's and B's for it): %+v", len(evs), evs)
	}
	first, second := evs[0], evs[1]
	if first.Actor != "SIGHUP" || first.Data[grant.ReloadDataInstance] != a.d.feed.instance || first.Data[grant.ReloadDataCauseSeq] != "" {
		t.Errorf("A's reload recorded as %+v", first)
	}
	if second.Actor != feedActor || second.Data[grant.ReloadDataInstance] != b.d.feed.instance ||
		second.Data[grant.ReloadDataCauseSeq] != strconv.FormatInt(first.Seq, 10) || !strings.Contains(second.Message, "carol") {
		t.Errorf("B's reload recorded as %+v, want caused by seq %d with carol removed", second, first.Seq)
	}
	if n := a.d.feed.reloads.Load() + b.d.feed.reloads.Load(); n != 1 {
		t.Errorf("%d reloads made for another replica's, want 1", n)
	}
	waitFor(t, "B's feed healthy", 20*time.Second, b.d.feed.healthy.Load)
	resp, err := http.Get("http://" + b.d.Addrs().Metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"\njitssh_feed_listening 1\n", "\njitssh_feed_healthy 1\n", "\njitssh_feed_read_errors_total 0\n", "\njitssh_feed_reloads_total 1\n", "\njitssh_feed_lag_events ", "\njitssh_feed_last_read_seconds "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("B's metrics lack %q:\n%s", want, body)
		}
	}
}

// TestFeedCutsASessionOnAnotherReplica: a session through B's bastion to
// a real sshd ends once its certificate is revoked through A, well before
// B's periodic lookup (30s while the feed is healthy) would notice.
func TestFeedCutsASessionOnAnotherReplica(t *testing.T) {
	sshdtest.Require(t, "sshd")
	login := sshdtest.LocalUser(t)
	r := newReplicas(t, "")
	keys, err := ca.LoadKeys(Layout{Dir: r.dirA}.CADir())
	if err != nil {
		t.Fatal(err)
	}
	target := sshdtest.Start(t, sshdtest.Config{TrustedUserCAKeys: []ssh.PublicKey{keys.Target.PublicKey()}, Principals: []string{login + "@web1"}})
	pol := testkit.Edit(t, string(policy.Demo()),
		`web1: {address: "127.0.0.1:22"`, fmt.Sprintf(`web1: {address: %q, host_key: %q`, target.Addr, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(target.HostKey)))),
		"logins: [deploy]\n    ttl: 10m\n    max_ttl: 1h", fmt.Sprintf("logins: [%s]\n    ttl: 10m\n    max_ttl: 1h", login))
	for _, dir := range []string{r.dirA, r.dirB} {
		if err := os.WriteFile(Layout{Dir: dir}.PolicyFile(), []byte(pol), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	a, b := r.serve(t, r.dirA), r.serve(t, r.dirB)
	ctx := context.Background()
	engineer := testkit.Signer(t)
	res, err := a.d.grants.Create(ctx, grant.Caller{User: "alice"}, grant.CreateRequest{Host: "web1", Login: login,
		Justification: "feed test across replicas", PublicKey: string(ssh.MarshalAuthorizedKey(engineer.PublicKey()))})
	if err != nil || res.Certificate == nil {
		t.Fatalf("Create = %+v, %v; want a certificate", res.Request, err)
	}
	sess := sessionThrough(t, b.d.Addrs().Bastion, login+"@web1", res.Certificate, engineer)
	testkit.WaitFor(t, feedWait, "session live on B", func() bool { return len(b.d.bastion.LiveSessions()) == 1 })

	revoked := time.Now()
	if err := a.d.admin.Revoke(ctx, admin, res.Certificate.Serial, "feed test"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-sess:
		t.Logf("session on B ended %s after the revocation through A was committed", time.Since(revoked))
		if err == nil {
			t.Fatal("the session exited 0 after its certificate was revoked")
		}
	case <-time.After(feedWait):
		t.Fatalf("the session on B still runs %s after the revocation through A", feedWait)
	}
	testkit.WaitFor(t, feedWait, "session.end recorded", func() bool {
		evs, err := b.d.store.Events(ctx, audit.EventFilter{Type: "session.end"})
		return err == nil && len(evs) == 1
	})
}

// sessionThrough opens a session running sleep through the bastion at
// addr as user with cert and returns its outcome when it ends.
func sessionThrough(t *testing.T, addr, user string, cert *ssh.Certificate, key ssh.Signer) <-chan error {
	t.Helper()
	cs, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	client, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(cs)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second}) // the bastion's identity is not what this tests
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	s, err := client.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan error, 1)
	if err := s.Start("sleep 120"); err != nil {
		t.Fatal(err)
	}
	go func() { out <- s.Wait() }()
	return out
}

// TestFeedRetriesAFailedFollowUpReload: B's reload for A's fails (B's
// file is mid-edit: not a policy); once the file is whole, a retry after
// a backoff puts it in force without another reload through A.
func TestFeedRetriesAFailedFollowUpReload(t *testing.T) {
	r := newReplicas(t, "")
	a, b := r.serve(t, r.dirA), r.serve(t, r.dirB)
	ctx := context.Background()
	bFile := Layout{Dir: r.dirB}.PolicyFile()
	if err := os.WriteFile(bFile, []byte("users: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := a.d.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, feedWait, "B's follow-up reload failed", func() bool {
		evs, err := a.d.store.Events(ctx, audit.EventFilter{Type: "policy.reload"})
		return err == nil && slices.ContainsFunc(evs, func(e audit.Event) bool { return e.Code == "failed" })
	})
	edited := testkit.Edit(t, string(policy.Demo()), "  carol: {groups: [dev], keys: []}\n", "")
	if err := os.WriteFile(bFile, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, feedWait, "carol gone from B's policy", func() bool { _, ok := b.d.policy.Current().User("carol"); return !ok })
}
