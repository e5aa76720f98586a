package grant_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/policy"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := pgServer.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// raceApprovers is how many distinct approvers the race test uses.
const raceApprovers = 100

// basePolicy: alice, bob and carol are in dev, bob and dan approve; web1 is
// staging (no approval), db1 is prod (root needs one approval, dba two,
// reader none); emergency lets dev break the glass for root anywhere.
const basePolicy = `
users:
  alice: {groups: [dev]}
  bob: {groups: [dev, approvers]}
  carol: {groups: [dev]}
  dan: {groups: [approvers]}
  boss: {groups: [admins]}
  aud: {groups: [secops]}
%s
admins: {groups: [admins]}
auditors: {groups: [secops]}
hosts:
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: staging
    groups: [dev]
    hosts: {labels: {env: staging}}
    logins: [deploy]
    ttl: 10m
    max_ttl: 1h
    justification: {min_length: 5}
    extensions: [permit-port-forwarding]
    source_addresses: [10.0.0.0/8, 192.168.1.0/24]
  - name: prod-reader
    groups: [dev]
    hosts: {names: [db1]}
    logins: [reader]
    ttl: 5m
  - name: prod-root
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [root]
    ttl: 10m
    max_ttl: 30m
    record_input: true
    approval: {approvers: [approvers], count: 1}
    request_ttl: 30m
    redeem_ttl: 10m
  - name: prod-dba
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [dba]
    approval: {approvers: [approvers], count: 2}
    request_ttl: 30m
    redeem_ttl: 10m
  - name: emergency
    groups: [dev]
    hosts: {names: ["*"]}
    logins: [root]
    ttl: 15m
    max_ttl: 30m
    justification: {min_length: 10, ticket: '^INC-[0-9]+'}
    approval: {approvers: [approvers], count: 1}
    break_glass: true
`

// policyText returns basePolicy with the race approvers added and every
// pair of edits (old, new) applied; an edit that matches nothing fails the
// test so that a policy change cannot silently not happen.
func policyText(t testing.TB, edits ...string) string {
	t.Helper()
	var extra strings.Builder
	for i := range raceApprovers {
		fmt.Fprintf(&extra, "  approver%03d: {groups: [approvers]}\n", i)
	}
	return testkit.Edit(t, fmt.Sprintf(basePolicy, strings.TrimSuffix(extra.String(), "\n")), edits...)
}

func parsePolicy(t testing.TB, edits ...string) *policy.Policy {
	t.Helper()
	p, err := policy.Parse("policy.yaml", []byte(policyText(t, edits...)))
	if err != nil {
		t.Fatalf("parse test policy: %v", err)
	}
	return p
}

// start is the test clock's first instant (whole seconds, as certificates are).
var start = time.Date(2026, 3, 10, 10, 0, 0, 0, time.UTC)

// recorder is a grant.Notifier that keeps what it is told.
type recorder struct {
	mu    sync.Mutex
	notes []grant.Notification
}

func (r *recorder) Notify(n grant.Notification) {
	r.mu.Lock()
	r.notes = append(r.notes, n)
	r.mu.Unlock()
}

// events returns the events of the notifications received, in order.
func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, len(r.notes))
	for i, n := range r.notes {
		out[i] = n.Event
	}
	return out
}

func (r *recorder) all() []grant.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]grant.Notification(nil), r.notes...)
}

// env is a Service over a real audit store, real CA keys and a parsed
// policy that a test may swap.
type env struct {
	svc   *grant.Service
	store *audit.Store
	keys  *ca.Keys
	clock *testkit.Clock
	pol   atomic.Pointer[policy.Policy]
	notes *recorder
	key   ssh.PublicKey // the engineers' key (one will do: grant does not bind keys to users)
}

type envOption func(*grant.Config)

func newEnv(t testing.TB, opts ...envOption) *env {
	t.Helper()
	dir := t.TempDir()
	store, err := audit.Open(filepath.Join(dir, "jitssh.db"))
	if err != nil {
		t.Fatalf("audit.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	keys, _, err := ca.InitKeys(filepath.Join(dir, "ca"), "ed25519")
	if err != nil {
		t.Fatalf("ca.InitKeys: %v", err)
	}
	e := &env{store: store, keys: keys, clock: testkit.NewClock(start), notes: &recorder{}, key: testkit.Signer(t).PublicKey()}
	e.pol.Store(parsePolicy(t))
	cfg := grant.Config{Policy: e.pol.Load, Store: store, Keys: keys, Clock: e.clock.Now, Notifier: e.notes}
	for _, o := range opts {
		o(&cfg)
	}
	if e.svc, err = grant.New(cfg); err != nil {
		t.Fatalf("grant.New: %v", err)
	}
	return e
}

func keyLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k))) + " engineer@laptop"
}

// request builds a CreateRequest for login@host with e's key.
func (e *env) request(host, login, justification string) grant.CreateRequest {
	return grant.CreateRequest{Host: host, Login: login, Justification: justification, PublicKey: keyLine(e.key)}
}

// pending creates a request that needs approval and returns its id.
func (e *env) pending(t testing.TB, user, login string) string {
	t.Helper()
	res, err := e.svc.Create(context.Background(), grant.Caller{User: user, ClientAddr: "127.0.0.1:5000"}, e.request("db1", login, "investigate replication lag"))
	if err != nil {
		t.Fatalf("create %s@db1 for %s: %v", login, user, err)
	}
	if res.Request.State != grant.StatePending || res.Certificate != nil {
		t.Fatalf("create %s@db1 for %s: state %q, certificate %v; want pending without certificate", login, user, res.Request.State, res.Certificate != nil)
	}
	return res.Request.ID
}

// approved creates a request for root@db1 by alice that bob approves.
func (e *env) approved(t testing.TB) string {
	t.Helper()
	id := e.pending(t, "alice", "root")
	res, err := e.svc.Approve(context.Background(), grant.Caller{User: "bob"}, id, "ok")
	if err != nil {
		t.Fatalf("approve %s: %v", id, err)
	}
	if res.Request.State != grant.StateApproved {
		t.Fatalf("approve %s: state %q, want approved", id, res.Request.State)
	}
	return id
}

func (e *env) events(t testing.TB, f audit.EventFilter) []audit.Event {
	t.Helper()
	evs, err := e.store.Events(context.Background(), f)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	return evs
}

// eventTypes returns the types of the events of request id, in order.
func (e *env) eventTypes(t testing.TB, id string) []string {
	t.Helper()
	var out []string
	for _, ev := range e.events(t, audit.EventFilter{RequestID: id}) {
		out = append(out, ev.Type)
	}
	return out
}

func (e *env) stored(t testing.TB, id string) audit.Request {
	t.Helper()
	r, err := e.store.Request(context.Background(), id)
	if err != nil {
		t.Fatalf("stored request %s: %v", id, err)
	}
	return r
}

func (e *env) certRows(t testing.TB, f audit.CertificateFilter) []audit.Certificate {
	t.Helper()
	cs, err := e.store.Certificates(context.Background(), f)
	if err != nil {
		t.Fatalf("certificates: %v", err)
	}
	return cs
}

// verifyChain fails unless the audit event chain verifies end to end.
func (e *env) verifyChain(t testing.TB) {
	t.Helper()
	res, err := e.store.Verify(context.Background())
	if err != nil || !res.OK {
		t.Fatalf("audit chain: %+v, %v", res, err)
	}
}

// wantError fails unless err is a *grant.Error of kind and code.
func wantError(t testing.TB, err error, kind grant.Kind, code string) {
	t.Helper()
	var ge *grant.Error
	if !errors.As(err, &ge) {
		t.Fatalf("error %v (%T), want a *grant.Error %s/%s", err, err, kind, code)
	}
	if ge.Kind != kind || ge.Code != code {
		t.Fatalf("error %s/%s (%v), want %s/%s", ge.Kind, ge.Code, err, kind, code)
	}
}

// checkCert verifies that cert is a user certificate signed by authority and
// valid for principal at the test clock's current time.
func checkCert(t testing.TB, cert *ssh.Certificate, authority ssh.PublicKey, principal string, at time.Time) {
	t.Helper()
	checker := ssh.CertChecker{
		IsUserAuthority: func(k ssh.PublicKey) bool {
			return string(k.Marshal()) == string(authority.Marshal())
		},
		SupportedCriticalOptions: ca.SupportedCriticalOptions(),
		Clock:                    func() time.Time { return at },
	}
	if err := checker.CheckCert(principal, cert); err != nil {
		t.Fatalf("certificate does not check for %q: %v", principal, err)
	}
	if !checker.IsUserAuthority(cert.SignatureKey) {
		t.Fatalf("certificate signed by %s, want %s", ssh.FingerprintSHA256(cert.SignatureKey), ssh.FingerprintSHA256(authority))
	}
}

// failingReader is a random source that always fails.
type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, io.ErrUnexpectedEOF }
