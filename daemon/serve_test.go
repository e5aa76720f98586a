package daemon

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/policy"
)

// serving is a Daemon being served by a test.
type serving struct {
	d       *Daemon
	cancel  context.CancelFunc
	done    chan error
	stopped bool
}

// serve builds a daemon on dir with every listener on 127.0.0.1:0 and
// serves it until the test stops it or ends.
func serve(t *testing.T, dir string) *serving {
	t.Helper()
	return serveConfig(t, Config{Dir: dir})
}

// serveConfig is serve with cfg's other fields (Store, ...) as given.
func serveConfig(t *testing.T, cfg Config) *serving {
	t.Helper()
	ready := make(chan Addrs, 1)
	cfg.APIAddr, cfg.BastionAddr, cfg.MetricsAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Ready = func(a Addrs) { ready <- a }
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &serving{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- d.Serve(ctx) }()
	t.Cleanup(func() { s.stop(t) })
	select {
	case a := <-ready:
		if a != d.Addrs() {
			t.Errorf("Ready got %+v, Addrs says %+v", a, d.Addrs())
		}
	case err := <-s.done:
		t.Fatalf("Serve: %v", err)
	case <-time.After(15 * time.Second):
		t.Fatal("daemon did not become ready")
	}
	return s
}

// stop ends Serve and closes the daemon; a second call does nothing.
func (s *serving) stop(t *testing.T) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("Serve returned %v after its context was cancelled", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Serve did not return")
	}
	if err := s.d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestServeAndClose serves a daemon, asks the API for its CA keys and
// health and reads the metrics, then checks that Close stops every listener
// and signs a final checkpoint of the chain head.
func TestServeAndClose(t *testing.T) {
	dir := initDir(t)
	s := serve(t, dir)
	addrs := s.d.Addrs()
	ctx := context.Background()
	c, err := api.NewClient("https://"+addrs.API, addrs.TLSFingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Health(ctx); err != nil {
		t.Fatal(err)
	}
	info, err := c.CA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := ca.LoadKeys(Layout{Dir: dir}.CADir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(info.UserCA, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(keys.User.PublicKey())))) || info.Bastion != addrs.Bastion {
		t.Fatalf("CA info %+v does not match the data directory", info)
	}
	checkMetrics(t, addrs.Metrics)
	wrong, _ := api.NewClient("https://"+addrs.API, "SHA256:"+strings.Repeat("A", 43), "")
	if err := wrong.Health(ctx); err == nil || !strings.Contains(err.Error(), "does not match the pinned") {
		t.Fatalf("a client pinning another fingerprint connected: %v", err)
	}

	s.stop(t)
	if err := s.d.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if err := s.d.Serve(ctx); err == nil || !strings.Contains(err.Error(), "Serve called twice") {
		t.Errorf("a second Serve = %v, want a refusal", err)
	}
	for name, addr := range map[string]string{"API": addrs.API, "bastion": addrs.Bastion, "metrics": addrs.Metrics} {
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Errorf("the %s still accepts connections on %s after Close", name, addr)
		}
	}
	store, err := audit.Open(Layout{Dir: dir}.Database())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	cps, err := store.Checkpoints(ctx)
	evs, eerr := store.Events(ctx, audit.EventFilter{})
	if err != nil || eerr != nil || len(cps) == 0 || len(evs) == 0 || cps[len(cps)-1].Seq != evs[len(evs)-1].Seq {
		t.Fatalf("after Close: checkpoints %+v (%v), events %d (%v); want the last event checkpointed", cps, err, len(evs), eerr)
	}
}

func checkMetrics(t *testing.T, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# TYPE jitssh_audit_events_total counter",
		`jitssh_audit_events_total{type="host_cert.issued"} 1`,
		"jitssh_bastion_live_sessions 0",
		`jitssh_webhook_deliveries_total{result="failed"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q:\n%s", want, body)
		}
	}
}

// TestReloadReportsAndAudits: Reload reports the users, hosts and roles
// that changed and audits policy.reload ok; a bad file is refused with its
// line, audited failed, and the last good policy stays in force.
func TestReloadReportsAndAudits(t *testing.T) {
	dir := initDir(t)
	l := Layout{Dir: dir}
	s := serve(t, dir)
	ctx := context.Background()
	if err := EnrolUser(ctx, dir, grant.Enrolment{Name: "zoe", Groups: []string{"dev"}, Keys: []string{string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey()))}}); err != nil {
		t.Fatal(err)
	}
	edited := testkit.Edit(t, string(policy.Demo()),
		"  carol: {groups: [dev], keys: []}\n", "",
		`db1: {address: "127.0.0.1:22"`, `db1: {address: "127.0.0.1:2222"`,
		"hosts:\n", "hosts:\n  db2: {address: \"127.0.0.1:22\", labels: {env: prod}}\n",
		"max_ttl: 1h", "max_ttl: 2h",
	)
	if err := os.WriteFile(l.PolicyFile(), []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := s.d.Reload(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := livepolicy.Change{
		Users: livepolicy.Names{Added: []string{"zoe"}, Removed: []string{"carol"}},
		Hosts: livepolicy.Names{Added: []string{"db2"}, Changed: []string{"db1"}},
		Roles: livepolicy.Names{Changed: []string{"staging-deploy"}},
	}
	if rep.String() != want.String() {
		t.Errorf("Reload reported %q, want %q", rep, want)
	}
	good := s.d.policy.Current()
	if err := os.WriteFile(l.PolicyFile(), []byte(testkit.BadPolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := s.d.Reload(ctx); err == nil || !strings.Contains(err.Error(), "policy.yaml:2") || !rep.Empty() {
		t.Fatalf("Reload of a bad file = %v, %v; want an error naming line 2 and no change", rep, err)
	}
	// Compared by content: the change feed may re-merge the enrolled users
	// meanwhile (it sees this test's enrolment from "another process"),
	// which makes a new value with the same users, hosts and roles.
	if ch := livepolicy.Diff(good, s.d.policy.Current()); !ch.Empty() {
		t.Fatalf("a bad reload replaced the policy in force: %s", ch)
	}
	if evs, err := s.d.store.Events(ctx, audit.EventFilter{Type: "admin.user.add"}); err != nil || len(evs) != 1 || evs[0].User != "zoe" {
		t.Errorf("enrolment not audited: %+v %v", evs, err)
	}
	evs, err := s.d.store.Events(ctx, audit.EventFilter{Type: "policy.reload"})
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, 0, len(evs))
	for _, e := range evs {
		got = append(got, e.Code+" "+e.Actor+" "+e.Message)
	}
	if len(got) != 2 || got[0] != "ok SIGHUP "+want.String() || !strings.HasPrefix(got[1], "failed SIGHUP ") || !strings.Contains(got[1], "policy.yaml:2") {
		t.Errorf("policy.reload events = %q, want ok with the change, then failed naming the line", got)
	}
}

// TestNewFailingLateUndoesItself: when the API cannot listen, New has
// already started the bastion and opened the store; it must stop and close
// them (TestMain checks that no goroutine is left) and free the bastion's
// port.
func TestNewFailingLateUndoesItself(t *testing.T) {
	dir := initDir(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bastionAddr := free.Addr().String()
	free.Close()
	_, err = New(context.Background(), Config{Dir: dir, APIAddr: taken.Addr().String(), BastionAddr: bastionAddr, MetricsAddr: "127.0.0.1:0",
		Logger: slog.New(slog.DiscardHandler)})
	if err == nil || !strings.Contains(err.Error(), "listen for API") {
		t.Fatalf("New with the API port taken = %v, want a listen error", err)
	}
	ln, err := net.Listen("tcp", bastionAddr)
	if err != nil {
		t.Fatalf("the bastion's port is still taken after a failed New: %v", err)
	}
	ln.Close()
}

// TestSweeperWithoutBastion: jitd serving without --bastion still runs
// the removal of ephemeral accounts (a queue left by a run with one must
// not stop silently).
func TestSweeperWithoutBastion(t *testing.T) {
	dir := initDir(t)
	d, err := New(context.Background(), Config{Dir: dir, APIAddr: "127.0.0.1:0", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	if d.accounts == nil {
		t.Fatal("no provisioner without a bastion: queued removals would stop")
	}
}
