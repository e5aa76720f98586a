package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jitssh/jitssh/internal/browsertest"
	"github.com/jitssh/jitssh/internal/testkit"
)

// TestConsoleSSOLogin logs in to the web console through the real
// provider in Chromium (console login page, the provider's own sign-in
// form filled in the browser, back to the console as the SSO user), with
// the provider's groups deciding what the pages show. The console is on
// 127.0.0.2, the provider on 127.0.0.1: another site for the browser, as
// in production, so that SameSite rules apply to the provider's redirect
// (ports alone do not make two origins different sites).
func TestConsoleSSOLogin(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.2:" + freePort(t, "127.0.0.2")
	s := newSSOEnvAt(t, 0, addr)
	if err := s.op.SetGroups("greg", []string{"sec-audit"}); err != nil {
		t.Fatal(err)
	}
	daemonCert, err := os.ReadFile(filepath.Join(s.d.Data, "tls", "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	opCert, err := os.ReadFile(s.op.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		user, password string
		auditor        bool
	}{{"erin", "pw-erin", false}, {"greg", "pw-greg", true}} {
		t.Run(tc.user, func(t *testing.T) {
			b := &consoleBrowser{Browser: browsertest.Start(t, browsertest.Options{TrustCertPEM: append(append([]byte{}, daemonCert...), opCert...), Timeout: 3 * time.Minute}),
				base: "https://" + addr}
			b.open(t, "/console/login", "#sso-corp")
			if got := b.Text("#sso-corp"); got != "Log in with Corp SSO" {
				t.Errorf("the SSO button says %q", got)
			}
			if err := b.Do(consoleWait, chromedp.Click(chromedp.CSS("#sso-corp")), chromedp.WaitVisible(chromedp.CSS(`form#login input[name="login"]`))); err != nil {
				t.Fatalf("the provider's sign-in page: %v\n%s\n%v", err, b.Text("body"), b.Messages())
			}
			if err := b.Do(consoleWait, chromedp.SendKeys(`form#login input[name="login"]`, tc.user), chromedp.SendKeys(`form#login input[name="password"]`, tc.password),
				chromedp.Click(chromedp.CSS("form#login button"))); err != nil {
				t.Fatalf("sign in at the provider: %v", err)
			}
			// The provider may ask for consent; then the console's
			// callback logs the browser in and moves on to /console/.
			clicked := false
			testkit.WaitFor(t, consoleWait, "the console's home page after the provider", func() bool {
				if !clicked && strings.Contains(b.Text("form#consent"), "Allow") {
					clicked = b.Do(consoleWait, chromedp.Click(chromedp.CSS("form#consent button"))) == nil
				}
				return strings.Contains(b.Text("header"), tc.user)
			})
			if loc, _ := chromedp.Run(b.Ctx, chromedp.Location()); loc != b.base+"/console/" {
				t.Errorf("after the login the browser is at %s, want /console/", loc)
			}
			nav := b.Text("nav")
			if got := strings.Contains(nav, "Audit"); got != tc.auditor {
				t.Errorf("%s's nav %q: shows Audit %v, want %v (groups decide)", tc.user, nav, got, tc.auditor)
			}
			if tc.auditor {
				b.open(t, "/console/audit", "table")
			}
			if p := b.Problems(); len(p) > 0 {
				t.Errorf("browser problems: %v", p)
			}
		})
	}
	evs := auditList(t, s.auditor, "--event", "console.login")
	for _, user := range []string{"erin", "greg"} {
		if _, ok := findEvent(evs, "console.login", func(ev auditEvent) bool { return ev.User == user && code(ev) == "sso" }); !ok {
			t.Errorf("no console.login (sso) of %s in %+v", user, evs)
		}
	}
	logins := auditList(t, s.auditor, "--event", "login")
	if _, ok := findEvent(logins, "login", func(ev auditEvent) bool { return ev.User == "erin" && ev.Data["method"] == "sso" }); !ok {
		t.Errorf("no login (method sso) of erin, as jit login --sso records: %+v", logins)
	}
}

// ssoClient is a browser-like HTTP client of the console (cookie jar, the
// console's origin on its POSTs) that does not follow redirects.
type ssoClient struct {
	c    *http.Client
	base string
}

func newSSOClient(t *testing.T, base string, daemonCert []byte) *ssoClient {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(daemonCert) {
		t.Fatal("daemon certificate is not PEM")
	}
	jar, _ := cookiejar.New(nil)
	return &ssoClient{base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// start posts the login page's SSO form and returns the provider URL it
// is sent to and the pre-login cookie's Set-Cookie header.
func (c *ssoClient) start(t *testing.T, provider string) (authURL, setCookie string) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.base+"/console/sso/start", strings.NewReader(url.Values{"provider": {provider}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := c.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sso start: %d %s", resp.StatusCode, body)
	}
	return resp.Header.Get("Location"), resp.Header.Get("Set-Cookie")
}

func (c *ssoClient) get(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := c.c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body)
}

// TestConsoleSSOCallbackBinding checks that the console's callback takes
// code and state only with the pre-login cookie of their own flow, and
// that the provider's error and a person without roles end in a clear,
// audited refusal.
func TestConsoleSSOCallbackBinding(t *testing.T) {
	t.Parallel()
	addr := "127.0.0.1:" + freePort(t, "127.0.0.1")
	base := "https://" + addr
	s := newSSOEnvAt(t, 0, addr)
	daemonCert, err := os.ReadFile(filepath.Join(s.d.Data, "tls", "tls.crt"))
	if err != nil {
		t.Fatal(err)
	}
	a, other := newSSOClient(t, base, daemonCert), newSSOClient(t, base, daemonCert)
	authURL, setCookie := a.start(t, "corp")
	for _, want := range []string{"__Host-jitssh_sso=", "Path=/", "Max-Age=600", "HttpOnly", "Secure", "SameSite=Lax"} {
		if !strings.Contains(setCookie, want) {
			t.Errorf("pre-login cookie %q lacks %s", setCookie, want)
		}
	}
	if au, _ := url.Parse(authURL); au.Query().Get("redirect_uri") != base+"/console/sso/callback" || au.Query().Get("code_challenge_method") != "S256" {
		t.Errorf("authorization URL %s: want redirect_uri %s/console/sso/callback and PKCE S256", authURL, base)
	}
	callback, err := s.op.CompleteLogin(authURL, "dave", "pw-dave")
	if err != nil {
		t.Fatal(err)
	}
	if callback.String() == "" || !strings.HasPrefix(callback.String(), base+"/console/sso/callback?") {
		t.Fatalf("the provider redirected to %s, not the console's callback", callback)
	}
	if code, body := newSSOClient(t, base, daemonCert).get(t, callback.String()); code != http.StatusUnauthorized || !strings.Contains(body, "unknown, used or expired") {
		t.Errorf("callback without the pre-login cookie: %d %s", code, body)
	}
	other.start(t, "corp")
	if code, body := other.get(t, callback.String()); code != http.StatusUnauthorized || !strings.Contains(body, "state is not the one") {
		t.Errorf("callback with another flow's cookie: %d %s", code, body)
	}
	if code, body := a.get(t, callback.String()); code != http.StatusOK || !strings.Contains(body, "Logged in as dave") {
		t.Fatalf("callback with its own cookie: %d %s", code, body)
	}
	if code, body := a.get(t, base+"/console/"); code != http.StatusOK || !strings.Contains(body, "dave") {
		t.Errorf("the console after the SSO login: %d %s", code, body)
	}
	if code, _ := a.get(t, callback.String()); code != http.StatusUnauthorized {
		t.Errorf("the same callback again: %d, want 401", code)
	}
	t.Run("provider error", func(t *testing.T) {
		c := newSSOClient(t, base, daemonCert)
		au, _ := c.start(t, "corp")
		u, _ := url.Parse(au)
		status, body := c.get(t, base+"/console/sso/callback?error=access_denied&error_description=nope&state="+url.QueryEscape(u.Query().Get("state")))
		if status != http.StatusUnauthorized || !strings.Contains(body, "access denied") {
			t.Errorf("error=access_denied: %d %s", status, body)
		}
	})
	t.Run("no roles", func(t *testing.T) {
		c := newSSOClient(t, base, daemonCert)
		au, _ := c.start(t, "corp")
		cb, err := s.op.CompleteLogin(au, "nobody", "pw-nobody")
		if err != nil {
			t.Fatal(err)
		}
		if status, body := c.get(t, cb.String()); status != http.StatusUnauthorized || !strings.Contains(body, "map to no jitssh group") {
			t.Errorf("a person without roles: %d %s", status, body)
		}
	})
	evs := auditList(t, s.auditor, "--event", "login.failed")
	for _, want := range []string{"sso_flow_unknown", "sso_state_mismatch", "sso_access_denied", "sso_no_roles"} {
		if _, ok := findEvent(evs, "login.failed", func(ev auditEvent) bool { return code(ev) == want && ev.Data["method"] == "sso" }); !ok {
			t.Errorf("no login.failed %s (method sso) in the audit trail", want)
		}
	}
}
