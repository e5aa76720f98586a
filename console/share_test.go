package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/console"
	"github.com/jitssh/jitssh/grant"
)

// TestShareScope: a share link opens its recording's player and windows,
// nothing else, is recorded on every use, and stops at expiry and revoke.
func TestShareScope(t *testing.T) {
	e := newEnv(t)
	x := e.recordSession("s_shared", "alice", []step{{time.Second, "shared output\r\n"}})
	other := e.recordSession("s_other", "alice", []step{{time.Second, "secret output\r\n"}})
	sec := e.login("sec")
	resp := sec.post("/console/sessions/"+x.ID+"/share", url.Values{"ttl": {"2h"}}, true)
	page := readBody(resp)
	m := regexp.MustCompile(`/console/s/(jits_[A-Za-z0-9_-]+)`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no share URL on the page:\n%s", page)
	}
	token := "/console/s/" + m[1]
	outsider := e.anonymous()
	resp, body := outsider.getResp(token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("share page: status %d\n%s", resp.StatusCode, body)
	}
	cast := regexp.MustCompile(`data-cast="([^"]+)"`).FindStringSubmatch(body)
	if cast == nil {
		t.Fatalf("no data-cast on the shared player page")
	}
	castURL := strings.ReplaceAll(cast[1], "&amp;", "&")
	if _, got := outsider.getResp(castURL); !strings.Contains(got, "shared output") {
		t.Errorf("the share's window lacks the recording's output: %q", got)
	}
	evs := e.events("recording.accessed")
	if len(evs) != 1 || evs[0].Code != grant.PurposeShare || evs[0].Data["share_id"] == "" || evs[0].ClientAddr != "127.0.0.1" || evs[0].SessionID != x.ID {
		t.Errorf("recording.accessed = %+v, want one with code share, the link's id and the client address", evs)
	}
	if n := len(e.events("share.created")); n != 1 {
		t.Errorf("share.created events = %d, want 1", n)
	}
	tests := []struct {
		name string
		path string
		want int
	}{
		{name: "sessions page", path: "/console/sessions", want: http.StatusUnauthorized},
		{name: "other recording's player", path: "/console/sessions/" + other.ID + "/play", want: http.StatusUnauthorized},
		{name: "other recording with the share's ticket", path: strings.Replace(castURL, "/console/s/"+m[1], "/console/api/sessions/"+other.ID, 1), want: http.StatusUnauthorized},
		{name: "a made-up token", path: "/console/s/jits_AAAA", want: http.StatusNotFound},
		{name: "window without the page's ticket", path: token + "/cast", want: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if resp, body := outsider.getResp(tt.path); resp.StatusCode != tt.want {
				t.Errorf("GET %s: status %d, want %d\n%s", tt.path, resp.StatusCode, tt.want, body)
			}
		})
	}
	// Expired: the page and its windows stop.
	e.clock.Advance(2 * time.Hour)
	for _, p := range []string{token, castURL} {
		if resp, _ := outsider.getResp(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("after expiry GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
	// Longer than share_max is refused; a revoked link stops at once.
	sec = e.login("sec") // the first session ended with its token
	if resp := sec.post("/console/sessions/"+x.ID+"/share", url.Values{"ttl": {"49h"}}, true); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("share for 49h with share_max 48h: status %d, want 400", resp.StatusCode)
	}
	sh, err := e.cons.CreateShare(context.Background(), grant.Caller{User: "sec"}, x.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if resp := e.login("bob").post("/console/shares/"+sh.ID+"/revoke", nil, true); resp.StatusCode != http.StatusForbidden {
		t.Errorf("revoke by someone else: status %d, want 403", resp.StatusCode)
	}
	if resp := sec.post("/console/shares/"+sh.ID+"/revoke", nil, true); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("revoke by its creator: status %d, want 303", resp.StatusCode)
	}
	if resp, _ := outsider.getResp("/console/s/" + sh.Token); resp.StatusCode != http.StatusNotFound {
		t.Errorf("revoked link: status %d, want 404", resp.StatusCode)
	}
}

// TestHostileText: outside text is rendered as text in pages, and
// recordings reach the browser's terminal sanitized.
func TestHostileText(t *testing.T) {
	e := newEnv(t)
	const hostile = `<script>alert(1)</script>"><img src=x onerror=alert(2)>`
	_, err := e.grants.Create(context.Background(), grant.Caller{User: "alice"}, grant.CreateRequest{Host: "web1", Login: "root",
		Justification: hostile, PublicKey: keyLine(t)})
	if err != nil {
		t.Fatal(err)
	}
	page := e.login("bob").get("/console/requests")
	if strings.Contains(page, "<script>alert") || strings.Contains(page, "<img src=x") {
		t.Errorf("the justification reached the page as HTML:\n%s", page)
	}
	if !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Errorf("the justification is not shown as text:\n%s", page)
	}
	var buf bytes.Buffer
	rec := recording(t, []string{"ok\x1b]52;c;ZXZpbA==\x07 \x1b]0;title\x07done\r\n"})
	if _, err := console.WriteWindow(&buf, strings.NewReader(rec), 0, 60); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `]52;`) || strings.Contains(buf.String(), `]0;title`) {
		t.Errorf("window passes terminal escapes: %q", buf.String())
	}
	if !strings.Contains(buf.String(), "done") {
		t.Errorf("window lost the output: %q", buf.String())
	}
}

// TestWindow: a window starts at from with the screen rebuilt from what
// came before, times relative to from, and says where the next begins.
func TestWindow(t *testing.T) {
	var outs []string
	for i := range 100 {
		outs = append(outs, "line"+string(rune('A'+i%26))+"\r\n")
	}
	rec := recording(t, outs) // one event per second, at 1..100
	tests := []struct {
		name                string
		from, window        float64
		wantFirst, wantEnd  float64
		wantEOF, wantPrelud bool
	}{
		{name: "start", from: 0, window: 10, wantFirst: 1, wantEnd: 10},
		{name: "middle", from: 50, window: 10, wantFirst: 0, wantEnd: 60, wantPrelud: true},
		{name: "last", from: 95, window: 60, wantFirst: 0, wantEnd: 100, wantEOF: true, wantPrelud: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			win, err := console.WriteWindow(&buf, strings.NewReader(rec), tt.from, tt.window)
			if err != nil {
				t.Fatal(err)
			}
			if win.End != tt.wantEnd || win.EOF != tt.wantEOF {
				t.Errorf("window = %+v, want End %v EOF %v", win, tt.wantEnd, tt.wantEOF)
			}
			lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
			var first []any
			if err := json.Unmarshal([]byte(lines[1]), &first); err != nil {
				t.Fatal(err)
			}
			if first[0].(float64) != tt.wantFirst {
				t.Errorf("first event at %v, want %v", first[0], tt.wantFirst)
			}
			if got := strings.Count(first[2].(string), "\r\n") > 1; got != tt.wantPrelud {
				t.Errorf("prelude present = %v, want %v (%q)", got, tt.wantPrelud, first[2])
			}
			for _, l := range lines[1:] {
				var ev []any
				_ = json.Unmarshal([]byte(l), &ev)
				if ev[0].(float64) < 0 || ev[0].(float64) >= tt.window {
					t.Errorf("event %s outside the window's [0, %v)", l, tt.window)
				}
			}
		})
	}
}
