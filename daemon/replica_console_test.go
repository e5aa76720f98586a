package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/audit"
)

// consoleBrowser logs into the web console at base with a one-time code
// from c, as a browser would, and returns its client (cookies kept).
func consoleBrowser(t *testing.T, c *api.Client, base string) *http.Client {
	t.Helper()
	code, err := c.ConsoleCode(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The test pins nothing here: the API client above already checked the
	// certificate of this very listener.
	b := &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(b.CloseIdleConnections)
	req, _ := http.NewRequest(http.MethodPost, base+"/console/login", strings.NewReader(url.Values{"code": {code.Code}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 400 {
		t.Fatalf("console login: %s", resp.Status)
	}
	return b
}

// TestConsoleLiveFollowProxiedToOwner opens the player page of replica
// B's live session through replica A and follows it: the live stream's
// ticket, made by A, is honoured by B (the shared view key) and the
// stream carries B's spool.
func TestConsoleLiveFollowProxiedToOwner(t *testing.T) {
	u := pgDatabase(t)
	dirs := replicaDirs(t, u, 2)
	a := serveAs(t, fastReplica(dirs[0], u, time.Now))
	b := serveAs(t, fastReplica(dirs[1], u, time.Now))
	aud := loginAs(t, a, u, dirs[0], "ann", "secops")
	waitFor(t, "B knows ann", 10*time.Second, func() bool { _, ok := b.d.policy.Current().Users["ann"]; return ok })
	ctx := context.Background()
	name := "2026/12/01/sess-c.cast"
	spool := filepath.Join(Layout{Dir: dirs[1]}.Recordings(), name)
	if err := os.MkdirAll(filepath.Dir(spool), 0o700); err != nil {
		t.Fatal(err)
	}
	rec := `{"version": 2, "width": 80, "height": 24}` + "\n" + `[0.1, "o", "console from B\r\n"]` + "\n"
	if err := os.WriteFile(spool, []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.d.store.Do(ctx, func(tx *audit.Tx) error {
		return tx.InsertSession(audit.Session{ID: "sess-c", User: "alice", Host: "db1", Login: "root", StartedAt: time.Now(), RecordingPath: name, Replica: b.d.replica.id})
	}); err != nil {
		t.Fatal(err)
	}
	base := "https://" + a.d.Addrs().API
	br := consoleBrowser(t, aud, base)
	resp, err := br.Get(base + "/console/sessions/sess-c/play?purpose=watch")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`data-live-url="([^"]+)"`).FindSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("player page through A: %s, live URL %q", resp.Status, m)
	}
	live, err := br.Get(base + html.UnescapeString(string(m[1])))
	if err != nil {
		t.Fatal(err)
	}
	defer live.Body.Close()
	if live.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(live.Body)
		t.Fatalf("live stream through A: %s %s", live.Status, body)
	}
	line, err := bufio.NewReader(live.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "data: ") || !strings.Contains(line, "console from B") {
		t.Fatalf("first live message = %q, %v; want B's screen so far", line, err)
	}
}
