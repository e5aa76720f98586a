package console_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/console"
	"github.com/jitssh/jitssh/grant"
)

// TestRoles checks every console route for each kind of user: the same
// roles as the API, server-side.
func TestRoles(t *testing.T) {
	e := newEnv(t)
	x := e.recordSession("s_roles", "alice", []step{{time.Second, "hello\r\n"}})
	users := []string{"", "alice", "sec", "boss"}
	tests := []struct {
		name string
		path string
		post url.Values
		want map[string]int // by user; "" is logged out
	}{
		{name: "home", path: "/console/", want: map[string]int{"": 401, "alice": 200, "sec": 200, "boss": 200}},
		{name: "requests", path: "/console/requests", want: map[string]int{"": 401, "alice": 200, "sec": 200, "boss": 200}},
		{name: "live", path: "/console/live", want: map[string]int{"": 401, "alice": 403, "sec": 200, "boss": 200}},
		{name: "sessions", path: "/console/sessions", want: map[string]int{"": 401, "alice": 200, "sec": 200, "boss": 200}},
		{name: "search", path: "/console/sessions?q=hello", want: map[string]int{"": 401, "alice": 403, "sec": 200, "boss": 200}},
		{name: "play", path: "/console/sessions/" + x.ID + "/play", want: map[string]int{"": 401, "alice": 403, "sec": 200, "boss": 200}},
		{name: "cast without ticket", path: "/console/api/sessions/" + x.ID + "/cast", want: map[string]int{"": 401, "alice": 403, "sec": 403, "boss": 403}},
		{name: "audit", path: "/console/audit", want: map[string]int{"": 401, "alice": 403, "sec": 200, "boss": 200}},
		{name: "shares", path: "/console/shares", want: map[string]int{"": 401, "alice": 403, "sec": 200, "boss": 200}},
		{name: "share a recording", path: "/console/sessions/" + x.ID + "/share", post: url.Values{"ttl": {"1h"}}, want: map[string]int{"": 401, "alice": 403, "sec": 200, "boss": 200}},
		{name: "revoke a session", path: "/console/sessions/" + x.ID + "/revoke", post: url.Values{"reason": {"test"}}, want: map[string]int{"": 401, "alice": 403, "sec": 403}},
	}
	browsers := map[string]*browser{"": e.anonymous()}
	for _, u := range users[1:] {
		browsers[u] = e.login(u)
	}
	for _, tt := range tests {
		for _, u := range users {
			want, ok := tt.want[u]
			if !ok {
				continue
			}
			t.Run(tt.name+"/"+u, func(t *testing.T) {
				b := browsers[u]
				var resp *http.Response
				var body string
				if tt.post != nil {
					resp = b.post(tt.path, tt.post, true)
					body = readBody(resp)
				} else {
					resp, body = b.getResp(tt.path)
				}
				if resp.StatusCode != want {
					t.Errorf("%s %s as %q: status %d, want %d\n%s", map[bool]string{true: "POST", false: "GET"}[tt.post != nil], tt.path, u, resp.StatusCode, want, body)
				}
				if got := resp.Header.Get("Content-Security-Policy"); got != console.CSP {
					t.Errorf("CSP = %q, want %q", got, console.CSP)
				}
				for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
					if resp.Header.Get(k) != v {
						t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
					}
				}
			})
		}
	}
	if n := len(e.events("access.denied")); n == 0 {
		t.Error("no access.denied event recorded for the refusals")
	}
}

// TestCSRF refuses state changes without the session's token, from
// another origin, or with neither Origin nor Sec-Fetch-Site.
func TestCSRF(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name       string
		csrf       string
		sameOrigin bool
		origin     string
		want       int
	}{
		{name: "no token", csrf: "-", sameOrigin: true, want: http.StatusForbidden},
		{name: "wrong token", csrf: "AAAA", sameOrigin: true, want: http.StatusForbidden},
		{name: "no origin headers", want: http.StatusForbidden},
		{name: "other origin", origin: "https://evil.example", want: http.StatusForbidden},
		{name: "same origin with token", sameOrigin: true, want: http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.login("bob")
			form := url.Values{}
			switch tt.csrf {
			case "-":
				form.Set("csrf", "")
			case "":
			default:
				form.Set("csrf", tt.csrf)
			}
			if tt.origin != "" {
				form.Set("csrf", b.csrf)
				req, _ := http.NewRequest(http.MethodPost, e.server.URL+"/console/logout", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Origin", tt.origin)
				if resp := b.do(req); resp.StatusCode != tt.want {
					t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
				}
				return
			}
			if resp := b.post("/console/logout", form, tt.sameOrigin); resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
			// Refused or not, the session's state says whether logout ran.
			resp, _ := b.getResp("/console/")
			if wantLoggedIn := tt.want != http.StatusOK; (resp.StatusCode == http.StatusOK) != wantLoggedIn {
				t.Errorf("after the POST: home status %d, logged in should be %v", resp.StatusCode, wantLoggedIn)
			}
		})
	}
	if n := len(e.events("console.logout")); n != 1 {
		t.Errorf("console.logout events = %d, want 1", n)
	}
}

// TestCookieAndCode checks the session cookie's attributes and that a
// code works once, within its minute.
func TestCookieAndCode(t *testing.T) {
	e := newEnv(t)
	b := e.anonymous()
	code := e.code("bob")
	resp := b.post("/console/login", url.Values{"code": {code}}, true)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login status %d", resp.StatusCode)
	}
	sc := resp.Header.Get("Set-Cookie")
	for _, want := range []string{console.CookieName + "=jitc_", "Path=/", "HttpOnly", "Secure", "SameSite=Strict", "Max-Age=3600"} {
		if !strings.Contains(sc, want) {
			t.Errorf("Set-Cookie %q lacks %q", sc, want)
		}
	}
	if strings.Contains(sc, "Domain=") {
		t.Errorf("Set-Cookie %q has a Domain (a __Host- cookie must not)", sc)
	}
	tests := []struct {
		name    string
		code    func() string
		advance time.Duration
		want    string
	}{
		{name: "used twice", code: func() string { return code }, want: grant.CodeConsoleCodeUsed},
		{name: "expired", code: func() string { return e.code("bob") }, advance: grant.ConsoleCodeTTL, want: grant.CodeConsoleCodeExpired},
		{name: "unknown", code: func() string { return "jitc_nope" }, want: grant.CodeConsoleCodeInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.code()
			e.clock.Advance(tt.advance)
			if resp := e.anonymous().post("/console/login", url.Values{"code": {c}}, true); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, want 401", resp.StatusCode)
			}
			evs := e.events("console.login_failed")
			if len(evs) == 0 || evs[len(evs)-1].Code != tt.want {
				t.Errorf("last console.login_failed = %+v, want code %s", evs, tt.want)
			}
		})
	}
	if n := len(e.events("console.login")); n != 1 {
		t.Errorf("console.login events = %d, want 1", n)
	}
	// A cross-site login POST is refused before the code is spent.
	c := e.code("bob")
	if resp := e.anonymous().post("/console/login", url.Values{"code": {c}}, false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without Origin: status %d, want 403", resp.StatusCode)
	}
	if _, err := e.cons.Login(context.Background(), c, "127.0.0.1"); err != nil {
		t.Errorf("the code refused cross-site was spent: %v", err)
	}
	// The session ends when the token it was made from does.
	e.clock.Advance(time.Hour)
	if resp, _ := b.getResp("/console/"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after the token's expiry: status %d, want 401", resp.StatusCode)
	}
}

// TestLoginThrottled: guessing codes is limited per client address, so a
// flood of bad codes cannot flood the audit log.
func TestLoginThrottled(t *testing.T) {
	e := newEnv(t)
	b := e.anonymous()
	limited := 0
	for i := 0; i < 40; i++ {
		resp := b.post("/console/login", url.Values{"code": {"jitc_guess"}}, true)
		if resp.StatusCode == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited == 0 {
		t.Fatal("40 bad codes from one address in a minute were all tried; want the login limit to refuse some")
	}
	if n := len(e.events("console.login_failed")); n > 30 {
		t.Errorf("console.login_failed recorded %d times; the limit should have stopped them at 30", n)
	}
}

// TestDecide: an approver approves in the page; their own request is
// refused with grant's message, shown on the page.
func TestDecide(t *testing.T) {
	e := newEnv(t)
	mine, err := e.grants.Create(context.Background(), grant.Caller{User: "bob"}, grant.CreateRequest{Host: "web1", Login: "root", Justification: "my own fix", PublicKey: keyLine(t)})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := e.grants.Create(context.Background(), grant.Caller{User: "alice"}, grant.CreateRequest{Host: "web1", Login: "root", Justification: "alice's fix", PublicKey: keyLine(t)})
	if err != nil {
		t.Fatal(err)
	}
	bob := e.login("bob")
	resp := bob.post("/console/requests/"+mine.Request.ID+"/decide", url.Values{"verdict": {"approve"}, "reason": {"sure"}}, true)
	if body := readBody(resp); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "bob may not decide request "+mine.Request.ID) {
		t.Errorf("approving one's own request: status %d\n%s", resp.StatusCode, body)
	}
	if resp := bob.post("/console/requests/"+theirs.Request.ID+"/decide", url.Values{"verdict": {"approve"}, "reason": {"looks fine"}}, true); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("approving alice's request: status %d\n%s", resp.StatusCode, readBody(resp))
	}
	got, err := e.grants.Get(context.Background(), grant.Caller{User: "alice"}, theirs.Request.ID)
	if err != nil || got.Request.State != grant.StateApproved {
		t.Errorf("alice's request after the approval: %+v, %v", got.Request, err)
	}
	if evs := e.events("request.approved"); len(evs) != 1 || evs[0].Actor != "bob" {
		t.Errorf("request.approved events = %+v, want one by bob", evs)
	}
}
