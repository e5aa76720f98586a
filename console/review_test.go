package console_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/grant"
)

// loseAuditor rewrites the policy so that sec is no longer an auditor,
// and reloads it.
func (e *env) loseAuditor() {
	e.t.Helper()
	b, err := os.ReadFile(e.policyPath)
	if err != nil {
		e.t.Fatal(err)
	}
	p := strings.Replace(string(b), "sec: {groups: [secops]", "sec: {groups: [dev]", 1)
	if err := os.WriteFile(e.policyPath, []byte(p), 0o600); err != nil {
		e.t.Fatal(err)
	}
	if err := e.policy.Reload(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	if e.cons.HasRole("sec", grant.RoleAuditor) {
		e.t.Fatal("sec is still an auditor after the reload")
	}
}

func attr(t *testing.T, page, name string) string {
	t.Helper()
	m := regexp.MustCompile(name + `="([^"]*)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no %s on the page:\n%s", name, page)
	}
	return html.UnescapeString(m[1])
}

// TestLiveStopsWhenViewerMayNot: a live watch ends, within a few
// seconds, when its viewer logs out, their console session expires,
// their jitssh token is deleted or they lose the auditor role; the
// session itself goes on.
func TestLiveStopsWhenViewerMayNot(t *testing.T) {
	tests := []struct {
		name string
		act  func(e *env, b *browser, tokenHash string)
	}{
		{name: "logout", act: func(e *env, b *browser, _ string) {
			if resp := b.post("/console/logout", nil, true); resp.StatusCode != http.StatusOK {
				t.Errorf("logout: status %d", resp.StatusCode)
			}
		}},
		{name: "console session expires", act: func(e *env, _ *browser, _ string) { e.clock.Advance(2 * time.Hour) }},
		{name: "token deleted", act: func(e *env, _ *browser, tokenHash string) {
			if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.DeleteToken(tokenHash) }); err != nil {
				t.Fatal(err)
			}
			e.clock.Advance(time.Minute) // past Session's cache of the token
		}},
		{name: "auditor role lost", act: func(e *env, _ *browser, _ string) { e.loseAuditor() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			x := e.recordSession("s_live", "alice", []step{{time.Second, "typing live\r\n"}}) // never ended: live
			code, tokenHash := e.codeWithToken("sec")
			b := e.anonymous()
			if resp := b.post("/console/login", url.Values{"code": {code}}, true); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("login: status %d", resp.StatusCode)
			}
			page := b.get("/console/sessions/" + x.ID + "/play")
			b.csrf = attr(t, page, `name="csrf" value`)
			live := attr(t, page, "data-live-url")
			if live == "" {
				t.Fatalf("a live session's player has no live URL")
			}
			req, _ := http.NewRequest(http.MethodGet, e.server.URL+live, nil)
			resp := b.do(req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("live stream: status %d: %s", resp.StatusCode, readBody(resp))
			}
			rd := bufio.NewReader(resp.Body)
			first, err := rd.ReadString('\n')
			if err != nil || !strings.Contains(first, "typing live") {
				t.Fatalf("first message %q, %v: want the screen so far", first, err)
			}
			tt.act(e, b, tokenHash)
			ended := make(chan string, 1)
			go func() {
				rest, _ := io.ReadAll(rd)
				ended <- string(rest)
			}()
			select {
			case rest := <-ended:
				if !strings.Contains(rest, `"state":"offline"`) {
					t.Errorf("the stream ended without its offline message: %q", rest)
				}
			case <-time.After(15 * time.Second):
				t.Fatal("the live watch still streams 15 s after its viewer may no longer watch")
			}
		})
	}
}

// TestSessionEndsWithToken: a console session made from a jitssh token
// ends when that token is deleted (an SSO refresh refused, an admin).
func TestSessionEndsWithToken(t *testing.T) {
	e := newEnv(t)
	code, tokenHash := e.codeWithToken("bob")
	b := e.anonymous()
	if resp := b.post("/console/login", url.Values{"code": {code}}, true); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	if resp, _ := b.getResp("/console/requests"); resp.StatusCode != http.StatusOK {
		t.Fatalf("requests with a live token: status %d", resp.StatusCode)
	}
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.DeleteToken(tokenHash) }); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(11 * time.Second)
	if resp, _ := b.getResp("/console/requests"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("requests after the token was deleted: status %d, want 401", resp.StatusCode)
	}
}

// TestShareDiesWithCreatorRole: a share link stops opening its recording
// when its creator is no longer an auditor.
func TestShareDiesWithCreatorRole(t *testing.T) {
	e := newEnv(t)
	x := e.recordSession("s_shared", "alice", []step{{time.Second, "shared output\r\n"}})
	sh, err := e.cons.CreateShare(context.Background(), grant.Caller{User: "sec"}, x.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	outsider := e.anonymous()
	if resp, _ := outsider.getResp("/console/s/" + sh.Token); resp.StatusCode != http.StatusOK {
		t.Fatalf("share page: status %d", resp.StatusCode)
	}
	e.loseAuditor()
	if resp, _ := outsider.getResp("/console/s/" + sh.Token); resp.StatusCode != http.StatusNotFound {
		t.Errorf("share page after its creator lost the auditor role: status %d, want 404", resp.StatusCode)
	}
}

// TestShareOfLiveSession: a share link to a session still running plays
// what is recorded so far (no live follow, no live URL) and records one
// access.
func TestShareOfLiveSession(t *testing.T) {
	e := newEnv(t)
	x := e.recordSession("s_live", "alice", []step{{time.Second, "so far\r\n"}})
	sh, err := e.cons.CreateShare(context.Background(), grant.Caller{User: "sec"}, x.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	outsider := e.anonymous()
	_, page := outsider.getResp("/console/s/" + sh.Token)
	if got := attr(t, page, "data-live"); got != "false" {
		t.Errorf("share page data-live = %q, want false", got)
	}
	if got := attr(t, page, "data-live-url"); got != "" {
		t.Errorf("share page data-live-url = %q, want none", got)
	}
	if _, body := outsider.getResp(attr(t, page, "data-cast")); !strings.Contains(body, "so far") {
		t.Errorf("the share's window lacks what was recorded so far: %q", body)
	}
	if n := len(e.events("recording.accessed")); n != 1 {
		t.Errorf("recording.accessed events = %d, want 1", n)
	}
}

// TestLoginAsks: the login page's check says whose code it is and who is
// logged in, without spending the code; logging in again ends the
// browser's previous console session on the server.
func TestLoginAsks(t *testing.T) {
	e := newEnv(t)
	bob := e.login("bob")
	oldCookie := bob.c.Jar.Cookies(mustURL(t, e.server.URL))
	code := e.code("alice")
	resp := bob.post("/console/login/check", url.Values{"code": {code}}, true)
	var ans struct{ User, Current string }
	if err := json.Unmarshal([]byte(readBody(resp)), &ans); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("check: status %d, %v", resp.StatusCode, err)
	}
	if ans.User != "alice" || ans.Current != "bob" {
		t.Errorf("check = %+v, want user alice, current bob", ans)
	}
	if resp := e.anonymous().post("/console/login/check", url.Values{"code": {code}}, false); resp.StatusCode != http.StatusForbidden {
		t.Errorf("check from another origin: status %d, want 403", resp.StatusCode)
	}
	if resp := bob.post("/console/login/check", url.Values{"code": {"jitc_nope"}}, true); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("check of an unknown code: status %d, want 401", resp.StatusCode)
	}
	// The check did not spend the code.
	if resp := bob.post("/console/login", url.Values{"code": {code}}, true); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("login after the check: status %d", resp.StatusCode)
	}
	if got := bob.get("/console/"); !strings.Contains(got, `class="who">alice`) {
		t.Errorf("the browser is not logged in as alice")
	}
	stale := e.anonymous()
	stale.c.Jar.SetCookies(mustURL(t, e.server.URL), oldCookie)
	if resp, _ := stale.getResp("/console/requests"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("bob's replaced session: status %d, want 401 (ended on the server)", resp.StatusCode)
	}
	if n := len(e.events("console.logout")); n != 1 {
		t.Errorf("console.logout events = %d, want 1 (the replaced session)", n)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestFlashFixed: the text a page shows after an action is the server's,
// chosen by a fixed code; other text in the URL is not shown.
func TestFlashFixed(t *testing.T) {
	e := newEnv(t)
	b := e.login("bob")
	tests := []struct {
		query, want, notWant string
	}{
		{query: "done=approve&id=req_1", want: "Approved request req_1."},
		{query: "done=Call+555-0100+to+verify+your+account", notWant: "555-0100"},
		{query: "done=approve&id=call+555-0100", notWant: "555-0100"},
		{query: "done=approve", notWant: `class="flash"`},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			page := b.get("/console/requests?" + tt.query)
			if tt.want != "" && !strings.Contains(page, tt.want) {
				t.Errorf("page lacks %q", tt.want)
			}
			if tt.notWant != "" && strings.Contains(page, tt.notWant) {
				t.Errorf("page shows %q from the URL", tt.notWant)
			}
		})
	}
}

// TestLoginFilterInStore: the login filter is the store's, so a session
// older than the newest 500 of other logins is still found.
func TestLoginFilterInStore(t *testing.T) {
	e := newEnv(t)
	start := e.clock.Now()
	err := e.store.Do(context.Background(), func(tx *audit.Tx) error {
		if err := tx.InsertSession(audit.Session{ID: "s_deploy", User: "alice", Host: "web1", Login: "deploy", Serial: 1, StartedAt: start.Add(-time.Hour)}); err != nil {
			return err
		}
		for i := range 501 {
			if err := tx.InsertSession(audit.Session{ID: fmt.Sprintf("s_root%d", i), User: "alice", Host: "web1", Login: "root", Serial: uint64(i + 2), StartedAt: start.Add(time.Duration(i) * time.Second)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	page := e.login("sec").get("/console/sessions?login=deploy")
	if !strings.Contains(page, "s_deploy") || strings.Contains(page, "s_root") {
		t.Errorf("login=deploy: want s_deploy only")
	}
}

// TestLogoutAfterExpiry: logging out with a cookie that no longer opens a
// session clears it.
func TestLogoutAfterExpiry(t *testing.T) {
	e := newEnv(t)
	b := e.login("bob")
	e.clock.Advance(2 * time.Hour)
	resp := b.post("/console/logout", nil, true)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("logout after expiry: status %d, want 200", resp.StatusCode)
	}
	var cleared bool
	for _, c := range resp.Cookies() {
		cleared = cleared || c.Name == "__Host-jitssh_console" && c.MaxAge < 0
	}
	if !cleared {
		t.Errorf("logout after expiry did not clear the cookie: %v", resp.Header["Set-Cookie"])
	}
}

// TestConsolePruned: codes and console sessions that can no longer be
// used are deleted when new codes are made.
func TestConsolePruned(t *testing.T) {
	e := newEnv(t)
	old := e.code("bob")
	e.clock.Advance(2 * time.Hour)
	e.code("bob")
	sum := sha256.Sum256([]byte(old))
	if _, err := e.store.ConsoleCode(context.Background(), hex.EncodeToString(sum[:])); !errors.Is(err, audit.ErrNotFound) {
		t.Errorf("expired code after a new one: %v, want ErrNotFound (pruned)", err)
	}
}
