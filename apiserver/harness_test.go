package apiserver_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/apiserver"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/tlspin"
)

// identity is an enrolled user's long-lived key.
type identity struct {
	name   string
	signer ssh.Signer
}

func newIdentity(t testing.TB, name string) identity {
	t.Helper()
	return identity{name: name, signer: testkit.Signer(t)}
}

func (id identity) keyLine() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(id.signer.PublicKey())))
}

// env is a running API over a real audit store, real CA keys and a policy
// parsed from YAML.
type env struct {
	t testing.TB
	// recordings is the directory the server reads recordings from.
	recordings string
	clock      *testkit.Clock // shared by the lifecycle and the API
	store      *audit.Store
	keys       *ca.Keys
	server     *httptest.Server
	fp         string
	ids        map[string]identity
	policy     *livepolicy.Holder
	// policyPath is the policy file, for tests of reloads.
	policyPath string
}

// testPolicy has alice, bob and carol in dev (bob also approves), an admin
// and an auditor; db1 is prod, web1 staging.
const testPolicy = `
users:
  alice: {groups: [dev], keys: ["%s"]}
  bob: {groups: [dev, approvers], keys: ["%s"]}
  carol: {groups: [dev], keys: ["%s"]}
  dave: {groups: [approvers], keys: ["%s"]}
  root-admin: {groups: [admins], keys: ["%s"]}
  sec: {groups: [secops], keys: ["%s"]}
admins: {groups: [admins], may_request_access: false}
auditors: {groups: [secops]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
  db2: {address: "127.0.0.1:22", labels: {env: prod}}
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
roles:
  - name: staging
    groups: [dev]
    hosts: {labels: {env: staging}}
    logins: [deploy]
    ttl: 10m
    max_ttl: 30m
    justification: {min_length: 10}
  - name: prod
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [deploy]
    max_ttl: 30m
    justification: {min_length: 10, ticket: '^(INC|CHG)-[0-9]+'}
  - name: prod-root
    groups: [dev]
    hosts: {labels: {env: prod}}
    logins: [root]
    justification: {min_length: 10}
    approval: {approvers: [approvers], count: %d}
    request_ttl: 30m
    redeem_ttl: 10m
  - name: emergency
    groups: [dev]
    hosts: {names: [web1]}
    logins: [root]
    justification: {min_length: 10, ticket: '^INC-[0-9]+'}
    approval: {approvers: [approvers], count: 1}
    break_glass: true
`

func newEnv(t testing.TB, approvals int) *env {
	t.Helper()
	dir := t.TempDir()
	clock := testkit.NewClock(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC))
	e := &env{t: t, clock: clock, ids: map[string]identity{}}
	names := []string{"alice", "bob", "carol", "dave", "root-admin", "sec"}
	var lines []any
	for _, n := range names {
		e.ids[n] = newIdentity(t, n)
		lines = append(lines, e.ids[n].keyLine())
	}
	lines = append(lines, approvals)
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(fmt.Sprintf(testPolicy, lines...)), 0o600); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.keys, _, err = ca.InitKeys(filepath.Join(dir, "ca"), ca.Ed25519); err != nil {
		t.Fatal(err)
	}
	if e.store, err = audit.Open(filepath.Join(dir, "jitssh.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	ps, err := livepolicy.Load(context.Background(), policyPath, e.store)
	if err != nil {
		t.Fatal(err)
	}
	e.policy, e.policyPath = ps, policyPath
	grants, err := grant.New(grant.Config{Policy: ps.Current, Store: e.store, Keys: e.keys, Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.server = httptest.NewUnstartedServer(nil)
	e.server.StartTLS()
	t.Cleanup(e.server.Close)
	e.fp = tlspin.Fingerprint(e.server.Certificate().Raw)
	e.recordings = filepath.Join(dir, "recordings")
	if err := os.Mkdir(e.recordings, 0o700); err != nil {
		t.Fatal(err)
	}
	srv, err := apiserver.New(apiserver.Config{Grants: grants, Store: e.store, Policy: ps, CAKeys: e.keys.Public(), TLSFingerprint: e.fp, Clock: clock.Now,
		Recordings: audit.DirRecordings(e.recordings)})
	if err != nil {
		t.Fatal(err)
	}
	e.server.Config.Handler = srv
	return e
}

// client returns an API client logged in as name.
func (e *env) client(name string) *api.Client {
	e.t.Helper()
	c, err := api.NewClient(e.server.URL, e.fp, "")
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	if name == "" {
		return c
	}
	if _, err := c.Login(context.Background(), name, e.ids[name].signer, 0); err != nil {
		e.t.Fatalf("login %s: %v", name, err)
	}
	return c
}

// freshKey returns a new public key in authorized_keys form, as jit sends.
func freshKey(t testing.TB) string {
	return newIdentity(t, "grant").keyLine()
}

func (e *env) events(f audit.EventFilter) []audit.Event {
	e.t.Helper()
	evs, err := e.store.Events(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func (e *env) certCount() int {
	e.t.Helper()
	cs, err := e.store.Certificates(context.Background(), audit.CertificateFilter{Kind: "user"})
	if err != nil {
		e.t.Fatal(err)
	}
	return len(cs)
}
