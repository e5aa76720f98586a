package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/oidctest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// ssoPolicy maps the provider's groups to roles; key login is for admins
// and the named auditor only. alice has a key but is no admin.
const ssoPolicy = `
users:
  root-admin: {groups: [admins], keys: [{{index .Key "root-admin"}}]}
  auditor: {groups: [secops], keys: [{{index .Key "auditor"}}]}
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
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
  key_login_allow: [auditor]
`

// ssoEnv is a daemon with two providers (corp: the confidential client,
// lab: the public one) at one real oidc-provider, and a key-login auditor.
type ssoEnv struct {
	d              *daemon
	op             *oidctest.Provider
	admin, auditor *engineer
	alice          *engineer // enrolled with a key, no admin
}

// newSSOEnv starts the provider, with ID tokens valid for idTTL (0: the
// provider's default, 1h), and the daemon.
func newSSOEnv(t *testing.T, idTTL time.Duration) *ssoEnv {
	t.Helper()
	return newSSOEnvAt(t, idTTL, "")
}

// newSSOEnvAt is newSSOEnv with the web console's SSO login: with
// consoleAddr (127.0.0.1:PORT, free), jitd serves the API there with
// --console-url https://consoleAddr, and the provider's clients accept
// its callback.
func newSSOEnvAt(t *testing.T, idTTL time.Duration, consoleAddr string) *ssoEnv {
	t.Helper()
	var redirects, flags []string
	corpClient := oidctest.ConfidentialClientID
	if consoleAddr != "" {
		corpClient = oidctest.WebClientID
		redirects = []string{"https://" + consoleAddr + "/console/sso/callback"}
		flags = []string{"--api", consoleAddr, "--console-url", "https://" + consoleAddr}
	}
	op := oidctest.Start(t, oidctest.Options{IDTokenTTL: idTTL, RedirectURIs: redirects, Accounts: map[string]oidctest.Account{
		"erin":   {Password: "pw-erin", Groups: []string{"eng-oncall"}},
		"greg":   {Password: "pw-greg", Groups: []string{"eng-oncall"}},
		"dave":   {Password: "pw-dave", Groups: []string{"eng-oncall"}},
		"frank":  {Password: "pw-frank", Groups: []string{"eng-oncall"}},
		"nobody": {Password: "pw-nobody", Groups: []string{"unmapped"}},
	}})
	conf := filepath.Join(t.TempDir(), "sso.yaml")
	body := fmt.Sprintf(`providers:
  - name: corp
    display: Corp SSO
    issuer: %[1]s
    client_id: %[2]s
    client_secret_file: %[3]s
    client_auth: post
    ca_file: %[4]s
    scopes: [openid, profile, email, groups, offline_access]
    user_claim: preferred_username
    groups_claim: groups
  - name: lab
    display: Lab SSO
    issuer: %[1]s
    client_id: %[5]s
    ca_file: %[4]s
    scopes: [openid, profile, groups, offline_access]
`, op.Issuer, corpClient, op.ClientSecretFile, op.CAFile, oidctest.PublicClientID)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	admin, auditor, alice := newEngineer(t, "root-admin"), newEngineer(t, "auditor"), newEngineer(t, "alice")
	d := startDaemon(t, renderPolicy(t, ssoPolicy, "deploy", []*engineer{admin, auditor, alice}, nil), append([]string{"--sso-config", conf}, flags...)...)
	d.login(t, auditor) // key login of a named non-admin: sso.key_login_allow
	return &ssoEnv{d: d, op: op, admin: admin, auditor: auditor, alice: alice}
}

// ssoEngineer is a person who exists only at the provider: a JIT_HOME
// and a $BROWSER that writes the URL it is given to a file.
func ssoEngineer(t *testing.T, name string) *engineer {
	t.Helper()
	e := newEngineer(t, name)
	browser := filepath.Join(e.Home, "browser")
	script := "#!/bin/sh\nprintf '%s' \"$1\" > " + e.Home + "/url.tmp && mv " + e.Home + "/url.tmp " + e.Home + "/url\n"
	if err := os.WriteFile(browser, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	e.ExtraEnv = append(e.ExtraEnv, "BROWSER="+browser)
	return e
}

func (s *ssoEnv) loginArgs(extra ...string) []string {
	return append([]string{"login", "--ca", "https://" + s.d.API, "--fingerprint", s.d.Fingerprint, "--sso"}, extra...)
}

// browserLogin runs jit login --sso as e, plays the person at the
// browser jit opened (the provider's login and consent pages), lets
// change alter the provider's redirect, and follows it to jit's loopback
// callback. It returns how jit ended and the callback page's text.
func (s *ssoEnv) browserLogin(t *testing.T, e *engineer, user, password string, change func(*url.URL), extra ...string) (result, string) {
	t.Helper()
	os.Remove(filepath.Join(e.Home, "url"))
	b := start(t, e, s.loginArgs(append([]string{"--timeout", "60s"}, extra...)...)...)
	var authURL []byte
	testkit.WaitFor(t, 30*time.Second, "jit to start the browser", func() bool {
		var err error
		authURL, err = os.ReadFile(filepath.Join(e.Home, "url"))
		return err == nil || b.exited()
	})
	if authURL == nil {
		t.Fatalf("jit exited before starting the browser: %v", b.wait(t, time.Second))
	}
	redirect, err := s.op.CompleteLogin(string(authURL), user, password)
	if err != nil {
		t.Fatalf("login at the provider: %v", err)
	}
	if redirect.Hostname() != "127.0.0.1" || redirect.Path != "/callback" {
		t.Fatalf("the provider redirected to %s, not jit's loopback callback", redirect)
	}
	if change != nil {
		// jit must refuse a callback that is not its login's (400) and
		// keep waiting for its own.
		forged := *redirect
		change(&forged)
		resp, err := http.Get(forged.String())
		if err != nil {
			t.Fatalf("send the changed redirect to jit: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("the changed redirect: %d, want 400", resp.StatusCode)
		}
	}
	resp, err := http.Get(redirect.String())
	if err != nil {
		t.Fatalf("follow the redirect to jit: %v", err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return b.wait(t, commandTimeout), string(page)
}

var deviceLine = regexp.MustCompile(`visit (https://\S+) and enter the code (\S+)`)

// deviceLogin runs jit login --sso as e with extra flags (--device, or
// none where jit must choose the device flow itself) and approves the code
// it prints at the provider as user; approve's error is returned with how
// jit ended.
func (s *ssoEnv) deviceLogin(t *testing.T, e *engineer, user, password string, extra ...string) (result, error) {
	t.Helper()
	b := start(t, e, s.loginArgs(extra...)...)
	var m []string
	testkit.WaitFor(t, 30*time.Second, "jit to print the device code", func() bool {
		m = deviceLine.FindStringSubmatch(b.stderr.String())
		return m != nil || b.exited()
	})
	if m == nil {
		t.Fatalf("jit printed no device code: %v", b.wait(t, time.Second))
	}
	err := s.op.ApproveDeviceAt(m[1], m[2], user, password)
	return b.wait(t, commandTimeout), err
}

// storedConfig is e's stored login, empty when there is none.
func storedConfig(t *testing.T, e *engineer) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.Home, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]any{}
	}
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// requestWeb1 asks for deploy@web1 as e and returns how jit ended.
func requestWeb1(t *testing.T, e *engineer) result {
	t.Helper()
	return start(t, e, "request", "web1", "--login", "deploy", "--reason", "CHG-11 check the SSO roles", "--add-to-agent", "no").wait(t, commandTimeout)
}

// TestSSOLogins: a person who exists only at the provider logs in in the
// browser (each client) and with a device code, gets exactly the roles
// their groups give, and the login is audited with its provider.
func TestSSOLogins(t *testing.T) {
	t.Parallel()
	s := newSSOEnv(t, 0)

	erin := ssoEngineer(t, "erin")
	r, page := s.browserLogin(t, erin, "erin", "pw-erin", nil, "--provider", "corp")
	if r.Code != 0 || !strings.Contains(r.Stdout, "logged in as erin") || !strings.Contains(page, "close this tab") {
		t.Fatalf("browser login: %v\npage: %s", r, page)
	}
	if c := storedConfig(t, erin); c["sso"] != "corp" || c["token"] == "" || c["user"] != "erin" {
		t.Errorf("stored login %v: want the token, user erin and sso corp", c)
	}
	if r := requestWeb1(t, erin); r.Code != 0 || !strings.Contains(r.Stdout, "granted deploy@web1") {
		t.Fatalf("erin (eng-oncall -> dev) asks for web1: %v", r)
	}

	greg := ssoEngineer(t, "greg")
	if r, page := s.browserLogin(t, greg, "greg", "pw-greg", nil, "--provider", "lab"); r.Code != 0 {
		t.Fatalf("browser login with the public client: %v\npage: %s", r, page)
	}

	dave := ssoEngineer(t, "dave")
	r, err := s.deviceLogin(t, dave, "dave", "pw-dave", "--device", "--provider", "corp")
	if err != nil || r.Code != 0 || !strings.Contains(r.Stdout, "logged in as dave") {
		t.Fatalf("device login: %v (approval: %v)", r, err)
	}
	if strings.Contains(r.Stderr, "\r") || strings.Contains(r.Stderr, "waiting for the login") {
		t.Errorf("a status line on stderr that is no terminal: %q", r.Stderr)
	}
	if r := requestWeb1(t, dave); r.Code != 0 {
		t.Fatalf("dave after a device login asks for web1: %v", r)
	}

	// On a terminal the wait is one status line that rewrites itself.
	frank := ssoEngineer(t, "frank")
	p := secStartPTY(t, frank, s.loginArgs("--device", "--provider", "lab")...)
	var m []string
	testkit.WaitFor(t, 30*time.Second, "jit to print the device code on the terminal", func() bool {
		m = deviceLine.FindStringSubmatch(p.screen.String())
		return m != nil
	})
	if err := s.op.ApproveDeviceAt(m[1], m[2], "frank", "pw-frank"); err != nil {
		t.Fatal(err)
	}
	if screen, code := p.wait(t, commandTimeout); code != 0 || !strings.Contains(screen, "\r\x1b[Kwaiting for the login at the provider (code "+m[2]) {
		t.Errorf("device login on a terminal: exit %d, screen %q; want a status line", code, screen)
	}

	evs := auditList(t, s.auditor, "--event", "login")
	for _, who := range []struct{ user, provider string }{{"erin", "corp"}, {"greg", "lab"}, {"dave", "corp"}, {"frank", "lab"}} {
		if _, ok := findEvent(evs, "login", func(ev auditEvent) bool {
			return ev.User == who.user && ev.Data["provider"] == who.provider && ev.Data["method"] != ""
		}); !ok {
			t.Errorf("no login event of %s at %s in %+v", who.user, who.provider, evs)
		}
	}
}

// TestSSOFallsBackToDevice: without a browser to open jit uses the device
// flow by itself.
func TestSSOFallsBackToDevice(t *testing.T) {
	t.Parallel()
	s := newSSOEnv(t, 0)
	for _, c := range []struct{ name, env, say string }{
		{"no desktop and no $BROWSER", "", ""},
		{"$BROWSER cannot be started", "BROWSER=/nonexistent/browser", "cannot open a browser"},
	} {
		t.Run(c.name, func(t *testing.T) {
			erin := newEngineer(t, "erin") // no $BROWSER, no DISPLAY
			if c.env != "" {
				erin.ExtraEnv = append(erin.ExtraEnv, c.env)
			}
			r, err := s.deviceLogin(t, erin, "erin", "pw-erin", "--provider", "corp")
			if err != nil || r.Code != 0 || !strings.Contains(r.Stderr, c.say) {
				t.Errorf("login: %v (approval: %v), want the device flow", r, err)
			}
		})
	}
}

// TestSSORolesFollowTheProvider: groups without a mapping give no login;
// a group change at the provider changes what the user may do at the next
// refresh; a disabled user can neither refresh nor log in again.
func TestSSORolesFollowTheProvider(t *testing.T) {
	t.Parallel()
	// The jitssh token lasts no longer than the provider's ID token.
	const idTTL = 10 * time.Minute
	s := newSSOEnv(t, idTTL)

	nobody := ssoEngineer(t, "nobody")
	r, _ := s.browserLogin(t, nobody, "nobody", "pw-nobody", nil, "--provider", "corp")
	if r.Code != 3 || !strings.Contains(r.Stderr, "sso_no_roles") || !strings.Contains(r.Stderr, "sso.groups") {
		t.Errorf("a user without mapped groups: %v, want exit 3 sso_no_roles", r)
	}
	if c := storedConfig(t, nobody); c["token"] != nil {
		t.Errorf("a refused login stored a token: %v", c)
	}

	greg := ssoEngineer(t, "greg")
	if r, _ := s.browserLogin(t, greg, "greg", "pw-greg", nil, "--provider", "corp"); r.Code != 0 {
		t.Fatalf("greg logs in: %v", r)
	}
	stored := storedConfig(t, greg)
	oldToken := stored["token"]
	if exp, err := time.Parse(time.RFC3339Nano, fmt.Sprint(stored["token_expires"])); err != nil || time.Until(exp) > idTTL || time.Until(exp) < idTTL-2*time.Minute {
		t.Errorf("token expires %v (%v), want within the ID token's %s", stored["token_expires"], err, idTTL)
	}
	if err := s.op.SetGroups("greg", []string{"sec-audit"}); err != nil {
		t.Fatal(err)
	}
	if r := requestWeb1(t, greg); r.Code != 0 {
		t.Fatalf("before the refresh greg keeps the roles of his login: %v", r)
	}
	if r := mustRun(t, greg, "login", "--refresh"); !strings.Contains(r, "logged in as greg") {
		t.Fatalf("refresh: %s", r)
	}
	if storedConfig(t, greg)["token"] == oldToken {
		t.Error("the refresh kept the old token")
	}
	if r := requestWeb1(t, greg); r.Code != 3 {
		t.Errorf("after moving to sec-audit and a refresh greg still asks for web1: %v", r)
	}
	if evs := auditList(t, greg, "--event", "login"); len(evs) == 0 {
		t.Error("greg, now in sec-audit (secops), cannot read the audit log")
	}

	dave := ssoEngineer(t, "dave")
	if r, _ := s.browserLogin(t, dave, "dave", "pw-dave", nil, "--provider", "corp"); r.Code != 0 {
		t.Fatalf("dave logs in: %v", r)
	}
	if err := s.op.Disable("dave"); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, dave, "login", "--refresh"); code != 3 || !strings.Contains(stderr, "sso_refresh_failed") {
		t.Errorf("a disabled user refreshes: exit %d %s, want 3 sso_refresh_failed", code, stderr)
	}
	r, page := s.browserLogin(t, dave, "dave", "pw-dave", nil, "--provider", "corp")
	if r.Code != 3 || !strings.Contains(r.Stderr, "access_denied") || !strings.Contains(page, "The login failed") {
		t.Errorf("a disabled user logs in in the browser: %v\npage: %s", r, page)
	}
	r, err := s.deviceLogin(t, dave, "dave", "pw-dave", "--device", "--provider", "corp")
	if err == nil || r.Code != 3 || !strings.Contains(r.Stderr, "sso_access_denied") {
		t.Errorf("a disabled user logs in with a device code: %v (approval: %v), want exit 3 sso_access_denied", r, err)
	}
	evs := auditList(t, s.auditor, "--event", "login.failed")
	// The device flow's refusal names no user: the provider said no before
	// the daemon learnt who it was.
	for _, c := range []struct{ user, method, code string }{{"nobody", "sso", "sso_no_roles"}, {"dave", "refresh", "sso_refresh_failed"}, {"", "device", "sso_access_denied"}} {
		if _, ok := findEvent(evs, "login.failed", func(ev auditEvent) bool {
			return ev.User == c.user && ev.Data["method"] == c.method && code(ev) == c.code
		}); !ok {
			t.Errorf("no login.failed %s (%s) of %q in %+v", c.code, c.method, c.user, evs)
		}
	}
}

// TestSSORefusals: each refusal jit and the daemon make around a login,
// with its exit code, through the binaries and, for what jit never sends,
// through the API.
func TestSSORefusals(t *testing.T) {
	t.Parallel()
	s := newSSOEnv(t, 0)
	erin := ssoEngineer(t, "erin")

	t.Run("key login off for a non-admin", func(t *testing.T) {
		_, stderr, code := run(t, s.alice, "login", "--ca", "https://"+s.d.API, "--fingerprint", s.d.Fingerprint, "--user", "alice", "-i", s.alice.Key)
		if code != 3 || !strings.Contains(stderr, "key_login_disabled") || !strings.Contains(stderr, "--sso") {
			t.Errorf("alice's key login: exit %d %s, want 3 key_login_disabled", code, stderr)
		}
		s.d.login(t, s.admin) // admins-only: the admin's key still logs in
	})
	t.Run("several providers and none chosen", func(t *testing.T) {
		_, stderr, code := run(t, erin, s.loginArgs()...)
		if code != 2 || !strings.Contains(stderr, "--provider: corp, lab") {
			t.Errorf("exit %d %s, want 2 naming corp and lab", code, stderr)
		}
	})
	t.Run("unknown provider", func(t *testing.T) {
		_, stderr, code := run(t, erin, s.loginArgs("--provider", "nope")...)
		if code != 2 || !strings.Contains(stderr, `"nope"`) || !strings.Contains(stderr, "corp, lab") {
			t.Errorf("exit %d %s, want 2 naming the providers", code, stderr)
		}
	})
	t.Run("state mismatch", func(t *testing.T) {
		r, _ := s.browserLogin(t, erin, "erin", "pw-erin", func(u *url.URL) {
			q := u.Query()
			q.Set("state", "x"+q.Get("state"))
			u.RawQuery = q.Encode()
		}, "--provider", "corp")
		if r.Code != 0 {
			t.Errorf("after a callback with another state (refused by jit), its own: %v, want exit 0", r)
		}
	})
	t.Run("no redirect in time", func(t *testing.T) {
		_, stderr, code := run(t, erin, s.loginArgs("--provider", "corp", "--timeout", "2s")...)
		if code != 4 || !strings.Contains(stderr, "did not redirect back within 2s") {
			t.Errorf("exit %d %s, want 4", code, stderr)
		}
	})
	t.Run("refresh of a key login", func(t *testing.T) {
		_, stderr, code := run(t, s.auditor, "login", "--refresh")
		if code != 2 || !strings.Contains(stderr, "not_sso_login") {
			t.Errorf("exit %d %s, want 2 not_sso_login", code, stderr)
		}
	})
	t.Run("through the API", func(t *testing.T) { s.apiRefusals(t) })

	evs := auditList(t, s.auditor, "--event", "login.failed")
	for _, want := range []string{"key_login_disabled", "sso_flow_unknown", "sso_unknown_provider", "sso_bad_redirect"} {
		if _, ok := findEvent(evs, "login.failed", func(ev auditEvent) bool { return code(ev) == want }); !ok {
			t.Errorf("no login.failed %s in the audit trail", want)
		}
	}
}

// apiRefusals are the daemon's refusals of requests jit never makes: a
// flow finished twice, a code without its flow, a provider or redirect the
// daemon does not accept.
func (s *ssoEnv) apiRefusals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	c, err := api.NewClient("https://"+s.d.API, s.d.Fingerprint, "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	expectCode := func(what string, err error, want string) {
		t.Helper()
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != want {
			t.Errorf("%s: %v, want %s", what, err, want)
		}
	}
	_, err = c.SSOStart(ctx, "nope", "http://127.0.0.1:5555/callback")
	expectCode("unknown provider", err, api.CodeSSOUnknownProvider)
	for _, bad := range []string{"http://evil.example:5555/callback", "https://127.0.0.1:5555/callback", "http://localhost:5555/callback", "http://127.0.0.1:5555"} {
		_, err = c.SSOStart(ctx, "corp", bad)
		expectCode("redirect "+bad, err, api.CodeSSOBadRedirect)
	}
	start, err := c.SSOStart(ctx, "corp", "http://127.0.0.1:5555/callback")
	if err != nil {
		t.Fatal(err)
	}
	redirect, err := s.op.CompleteLogin(start.AuthURL, "erin", "pw-erin")
	if err != nil {
		t.Fatal(err)
	}
	q := redirect.Query()
	_, err = c.SSOFinish(ctx, "not-"+start.Flow, q.Get("code"), q.Get("state"))
	expectCode("a code with another flow", err, api.CodeSSOFlowUnknown)
	if res, err := c.SSOFinish(ctx, start.Flow, q.Get("code"), q.Get("state")); err != nil || res.User != "erin" {
		t.Fatalf("finish: %+v %v", res, err)
	}
	_, err = c.SSOFinish(ctx, start.Flow, q.Get("code"), q.Get("state"))
	expectCode("a flow finished twice", err, api.CodeSSOFlowUnknown)
}
