package apiserver_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/apiserver"
	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/oidctest"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/sso"
	"github.com/jitssh/jitssh/tlspin"
)

const ssoPolicy = `
users:
  alice: {groups: [dev], keys: ["%s"]}
  root-admin: {groups: [admins], keys: ["%s"]}
admins: {groups: [admins]}
auditors: {groups: [secops]}
hosts:
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
roles:
  - name: staging
    groups: [dev]
    hosts: {labels: {env: staging}}
    logins: [deploy]
sso:
  groups:
    eng-oncall: [dev]
    sec-audit: [secops]
  key_login: admins-only
`

// ssoEnv is an API with an SSO provider: the real oidc-provider, a real
// store and policy, and the wall clock (the provider's tokens carry real
// times).
type ssoEnv struct {
	*env
	op *oidctest.Provider
}

func newSSOEnv(t *testing.T) *ssoEnv {
	t.Helper()
	op := oidctest.Start(t, oidctest.Options{Accounts: map[string]oidctest.Account{
		"erin":   {Password: "pw-erin", Groups: []string{"eng-oncall"}},
		"sam":    {Password: "pw-sam", Groups: []string{"sec-audit", "unmapped"}},
		"nobody": {Password: "pw-nobody", Groups: []string{"unmapped"}},
		"alice":  {Password: "pw-alice", Groups: []string{"eng-oncall"}},
	}})
	dir := t.TempDir()
	e := &env{t: t, ids: map[string]identity{}}
	for _, n := range []string{"alice", "root-admin"} {
		e.ids[n] = newIdentity(t, n)
	}
	e.policyPath = filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(e.policyPath, []byte(fmt.Sprintf(ssoPolicy, e.ids["alice"].keyLine(), e.ids["root-admin"].keyLine())), 0o600); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "sso.yaml")
	if err := os.WriteFile(conf, fmt.Appendf(nil, `providers:
  - name: corp
    display: Corp SSO
    issuer: %s
    client_id: %s
    client_secret_file: %s
    client_auth: post
    ca_file: %s
    scopes: [openid, profile, groups, offline_access]
`, op.Issuer, oidctest.ConfidentialClientID, op.ClientSecretFile, op.CAFile), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := sso.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if e.keys, _, err = ca.InitKeys(filepath.Join(dir, "ca"), ca.Ed25519); err != nil {
		t.Fatal(err)
	}
	if e.store, err = audit.Open(filepath.Join(dir, "jitssh.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.store.Close() })
	if e.policy, err = livepolicy.Load(context.Background(), e.policyPath, e.store); err != nil {
		t.Fatal(err)
	}
	grants, err := grant.New(grant.Config{Policy: e.policy.Current, Store: e.store, Keys: e.keys})
	if err != nil {
		t.Fatal(err)
	}
	rp, err := sso.New(cfg, sso.Options{Store: e.store})
	if err != nil {
		t.Fatal(err)
	}
	e.server = httptest.NewUnstartedServer(nil)
	e.server.StartTLS()
	t.Cleanup(e.server.Close)
	e.fp = tlspin.Fingerprint(e.server.Certificate().Raw)
	srv, err := apiserver.New(apiserver.Config{Grants: grants, Store: e.store, Policy: e.policy, CAKeys: e.keys.Public(), TLSFingerprint: e.fp, SSO: rp})
	if err != nil {
		t.Fatal(err)
	}
	e.server.Config.Handler = srv
	return &ssoEnv{env: e, op: op}
}

// codeLogin runs the PKCE flow for user at the real provider and returns
// the client and the answer (or the refusal).
func (s *ssoEnv) codeLogin(t *testing.T, user, password string) (*api.Client, api.LoginResponse, error) {
	t.Helper()
	c := s.client("")
	ctx := context.Background()
	st, err := c.SSOStart(ctx, "corp", "http://127.0.0.1:45678/callback")
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.op.CompleteLogin(st.AuthURL, user, password)
	if err != nil {
		t.Fatalf("provider login of %s: %v", user, err)
	}
	q := back.Query()
	lr, err := c.SSOFinish(ctx, st.Flow, q.Get("code"), q.Get("state"))
	return c, lr, err
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("got %v, want code %s", err, code)
	}
}

func (s *ssoEnv) groups(user string) []string {
	u, _ := s.policy.Current().User(user)
	return u.Groups
}

func TestSSOCodeFlowRealProvider(t *testing.T) {
	s := newSSOEnv(t)
	ctx := context.Background()
	ps, err := s.client("").SSOProviders(ctx)
	if err != nil || len(ps.Providers) != 1 || ps.Providers[0].Name != "corp" || !ps.Providers[0].Device {
		t.Fatalf("providers %+v, %v", ps, err)
	}
	c, lr, err := s.codeLogin(t, "erin", "pw-erin")
	if err != nil {
		t.Fatal(err)
	}
	if lr.User != "erin" || lr.Admin || lr.Auditor || time.Until(lr.ExpiresAt) > time.Hour+time.Minute {
		t.Fatalf("login %+v (the token must not outlive the 1h ID token)", lr)
	}
	if _, err := c.Grants(ctx); err != nil {
		t.Fatalf("the SSO token is refused: %v", err)
	}
	if g := s.groups("erin"); !slices.Equal(g, []string{"dev"}) {
		t.Fatalf("erin has groups %q in the policy, want [dev]", g)
	}
	// A reload that maps eng-oncall elsewhere changes erin's groups at
	// once, without a new login.
	remapped := strings.Replace(mustRead(t, s.policyPath), "eng-oncall: [dev]", "eng-oncall: [dev, secops]", 1)
	if err := os.WriteFile(s.policyPath, []byte(remapped), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.policy.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if g := s.groups("erin"); !slices.Equal(g, []string{"dev", "secops"}) {
		t.Fatalf("after the remapping reload erin has groups %q, want [dev secops]", g)
	}

	// The group changes at the provider; a refresh re-reads it and
	// revokes the old token.
	if err := s.op.SetGroups("erin", []string{"sec-audit"}); err != nil {
		t.Fatal(err)
	}
	old := s.client("")
	old.SetToken(lr.Token)
	lr2, err := c.RefreshLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !lr2.Auditor || lr2.Token == lr.Token || !slices.Equal(s.groups("erin"), []string{"secops"}) {
		t.Fatalf("after refresh %+v groups %q", lr2, s.groups("erin"))
	}
	_, err = old.Grants(ctx)
	wantCode(t, err, api.CodeUnauthenticated)

	// Disabled at the provider: the refresh is refused and the login lost.
	if err := s.op.Disable("erin"); err != nil {
		t.Fatal(err)
	}
	_, err = c.RefreshLogin(ctx)
	wantCode(t, err, api.CodeSSORefreshFailed)
	_, err = c.Grants(ctx)
	wantCode(t, err, api.CodeUnauthenticated)
	if g := s.groups("erin"); len(g) != 0 {
		t.Fatalf("a refused refresh left erin the groups %q", g)
	}

	_, _, err = s.codeLogin(t, "nobody", "pw-nobody")
	wantCode(t, err, api.CodeSSONoRoles)
	_, _, err = s.codeLogin(t, "alice", "pw-alice")
	wantCode(t, err, api.CodeSSOTokenInvalid)

	evs := s.events(audit.EventFilter{})
	var got []string
	for _, ev := range evs {
		if ev.Type == "login" || ev.Type == "login.failed" {
			got = append(got, ev.Type+"/"+ev.Code+"/"+ev.Data["method"]+"/"+ev.Data["reason"]+"/"+ev.User)
		}
	}
	want := []string{"login/ok/sso//erin", "login/ok/refresh//erin", "login.failed/sso_refresh_failed/refresh/invalid_grant/erin",
		"login.failed/sso_no_roles/sso//nobody", "login.failed/sso_token_invalid/sso/local_user/alice"}
	if !slices.Equal(got, want) {
		t.Fatalf("login events\n got %q\nwant %q", got, want)
	}
}

func TestSSOFlowRefusals(t *testing.T) {
	s := newSSOEnv(t)
	ctx := context.Background()
	c := s.client("")
	_, err := c.SSOStart(ctx, "nope", "http://127.0.0.1:45678/callback")
	wantCode(t, err, api.CodeSSOUnknownProvider)
	_, err = c.SSOStart(ctx, "corp", "https://evil.example/callback")
	wantCode(t, err, api.CodeSSOBadRedirect)

	st, err := c.SSOStart(ctx, "corp", "http://127.0.0.1:45678/callback")
	if err != nil {
		t.Fatal(err)
	}
	back, err := s.op.CompleteLogin(st.AuthURL, "erin", "pw-erin")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.SSOFinish(ctx, st.Flow, back.Query().Get("code"), "forged-state")
	wantCode(t, err, api.CodeSSOStateMismatch)
	// The flow is spent by the failed attempt: the right state no longer helps.
	_, err = c.SSOFinish(ctx, st.Flow, back.Query().Get("code"), back.Query().Get("state"))
	wantCode(t, err, api.CodeSSOFlowUnknown)

	// erin's name is bound to another subject (an earlier person of that
	// name): the login is refused as an identity conflict.
	if err := s.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.PutSSOIdentity(audit.SSOIdentity{Name: "erin", Provider: "corp", Subject: "someone-else", Groups: []string{"dev"},
			ExpiresAt: time.Now().Add(time.Hour), UpdatedAt: time.Now()})
	}); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.codeLogin(t, "erin", "pw-erin")
	wantCode(t, err, api.CodeSSOTokenInvalid)
	evs := s.events(audit.EventFilter{Type: "login.failed"})
	if last := evs[len(evs)-1]; last.Data["reason"] != "identity_conflict" || last.User != "erin" {
		t.Fatalf("last refusal %+v, want reason identity_conflict", last)
	}

	// Key login: off for alice (not an admin), on for root-admin.
	_, err = s.client("").Login(ctx, "alice", s.ids["alice"].signer, 0)
	wantCode(t, err, api.CodeKeyLoginDisabled)
	admin := s.client("root-admin")
	_, err = admin.RefreshLogin(ctx)
	wantCode(t, err, api.CodeNotSSOLogin)
}

func TestSSODeviceFlowRealProvider(t *testing.T) {
	s := newSSOEnv(t)
	ctx := context.Background()
	c := s.client("")
	ds, err := c.SSODevice(ctx, "corp")
	if err != nil {
		t.Fatal(err)
	}
	if ds.UserCode == "" || ds.Interval < 1 || ds.VerificationURI == "" {
		t.Fatalf("device start %+v", ds)
	}
	if _, p, err := c.SSODevicePoll(ctx, ds.Flow); err != nil || p == nil {
		t.Fatalf("poll before approval: pending %v, %v", p, err)
	}
	if err := s.op.ApproveDeviceAt(ds.VerificationURI, ds.UserCode, "sam", "pw-sam"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	var lr api.LoginResponse
	for {
		var p *api.SSOPending
		lr, p, err = c.SSODevicePoll(ctx, ds.Flow)
		if err != nil {
			t.Fatal(err)
		}
		if p == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("device login still pending after a minute")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if lr.User != "sam" || !lr.Auditor {
		t.Fatalf("device login %+v", lr)
	}
	if _, err := c.Grants(ctx); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.SSODevicePoll(ctx, ds.Flow)
	wantCode(t, err, api.CodeSSOFlowUnknown)
}
