package console_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ca"
	"github.com/jitssh/jitssh/console"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/livepolicy"
	"github.com/jitssh/jitssh/sessionlog"
)

// testPolicy: alice and bob are engineers, bob approves, sec audits,
// boss is an admin.
const testPolicy = `
users:
  alice: {groups: [dev], keys: ["%s"]}
  bob: {groups: [dev, approvers], keys: ["%s"]}
  sec: {groups: [secops], keys: ["%s"]}
  boss: {groups: [admins], keys: ["%s"]}
admins: {groups: [admins]}
auditors: {groups: [secops]}
console: {share_max: 48h}
hosts:
  web1: {address: "127.0.0.1:22", labels: {env: staging}}
roles:
  - name: staging-root
    groups: [dev]
    hosts: {names: [web1]}
    logins: [root]
    justification: {min_length: 5}
    approval: {approvers: [approvers], count: 1}
`

// env is a console over a real audit store, policy and grant services,
// served over TLS by httptest.
type env struct {
	t          testing.TB
	clock      *testkit.Clock
	store      *audit.Store
	grants     *grant.Service
	cons       *grant.Console
	recordings string
	server     *httptest.Server
	policyPath string
	policy     *livepolicy.Holder
}

func newEnv(t testing.TB) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{t: t, clock: testkit.NewClock(time.Now().UTC().Truncate(time.Second))}
	var keys []any
	for range 4 {
		keys = append(keys, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey()))))
	}
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, []byte(fmt.Sprintf(testPolicy, keys...)), 0o600); err != nil {
		t.Fatal(err)
	}
	cakeys, _, err := ca.InitKeys(filepath.Join(dir, "ca"), ca.Ed25519)
	if err != nil {
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
	e.policyPath, e.policy = policyPath, ps
	if e.grants, err = grant.New(grant.Config{Policy: ps.Current, Store: e.store, Keys: cakeys, Clock: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	admin, err := grant.NewAdmin(grant.AdminConfig{Store: e.store, Policy: ps.Current, Reloader: ps, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	sessions, err := grant.NewSessions(grant.SessionsConfig{Store: e.store, Policy: ps.Current, Clock: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if e.cons, err = grant.NewConsole(grant.ConsoleConfig{Store: e.store, Policy: ps.Current, Clock: e.clock.Now}); err != nil {
		t.Fatal(err)
	}
	e.recordings = filepath.Join(dir, "recordings")
	if err := os.Mkdir(e.recordings, 0o700); err != nil {
		t.Fatal(err)
	}
	srv, err := console.New(console.Config{Grants: e.grants, Console: e.cons, Sessions: sessions, Admin: admin, Store: e.store, Policy: ps.Current,
		Recordings: audit.DirRecordings(e.recordings), Clock: e.clock.Now, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.server = httptest.NewUnstartedServer(srv)
	e.server.StartTLS()
	t.Cleanup(e.server.Close)
	return e
}

// browser is an HTTP client with a cookie jar, as a browser on the
// console's origin.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) anonymous() *browser {
	jar, _ := cookiejar.New(nil)
	tr := e.server.Client().Transport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: e.server.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
	c := &http.Client{Jar: jar, Transport: tr, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &browser{e: e, c: c}
}

// login logs user in with a fresh one-time code, as jit console does.
func (e *env) login(user string) *browser {
	e.t.Helper()
	b := e.anonymous()
	code := e.code(user)
	resp := b.post("/console/login", url.Values{"code": {code}}, true)
	if resp.StatusCode != http.StatusSeeOther {
		e.t.Fatalf("login %s: status %d", user, resp.StatusCode)
	}
	body := b.get("/console/")
	const marker = `name="csrf" value="`
	i := strings.Index(body, marker)
	if i < 0 {
		e.t.Fatalf("login %s: no CSRF token on the home page:\n%s", user, body)
	}
	b.csrf = body[i+len(marker) : i+len(marker)+strings.IndexByte(body[i+len(marker):], '"')]
	return b
}

func (e *env) code(user string) string {
	e.t.Helper()
	code, _ := e.codeWithToken(user)
	return code
}

// codeWithToken makes a one-time code for user as jit console does, from
// a bearer token stored as jit login stores it (valid for an hour), and
// returns the code and the token's hash.
func (e *env) codeWithToken(user string) (code, tokenHash string) {
	e.t.Helper()
	token := "jit_" + rand.Text()
	sum := sha256.Sum256([]byte(token))
	tokenHash = hex.EncodeToString(sum[:])
	expires := e.clock.Now().Add(time.Hour)
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error {
		return tx.InsertToken(audit.Token{Hash: tokenHash, User: user, IssuedAt: e.clock.Now(), ExpiresAt: expires})
	}); err != nil {
		e.t.Fatal(err)
	}
	code, _, err := e.cons.IssueCode(context.Background(), grant.Caller{User: user}, token, expires)
	if err != nil {
		e.t.Fatal(err)
	}
	return code, tokenHash
}

func (b *browser) do(req *http.Request) *http.Response {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	b.e.t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// getResp fetches path and returns the answer with its body read.
func (b *browser) getResp(path string) (*http.Response, string) {
	b.e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.e.server.URL+path, nil)
	resp := b.do(req)
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func (b *browser) get(path string) string {
	b.e.t.Helper()
	_, body := b.getResp(path)
	return body
}

// post sends a form as a same-origin browser page would (Origin and
// Sec-Fetch-Site), with the session's CSRF token unless form has one.
func (b *browser) post(path string, form url.Values, sameOrigin bool) *http.Response {
	b.e.t.Helper()
	form = maps.Clone(form)
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok && b.csrf != "" {
		form.Set("csrf", b.csrf)
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.server.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sameOrigin {
		req.Header.Set("Origin", b.e.server.URL)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
	}
	return b.do(req)
}

// recordSession writes a finished session's recording through
// sessionlog's writer: each step is output after a pause.
func (e *env) recordSession(id, user string, steps []step) audit.Session {
	e.t.Helper()
	path := filepath.Join(e.recordings, id+".cast")
	clock := testkit.NewClock(e.clock.Now())
	w, err := sessionlog.Create(path, sessionlog.Header{Version: 2, Width: 80, Height: 24, SessionID: id}, sessionlog.WriterOptions{Clock: clock.Now})
	if err != nil {
		e.t.Fatal(err)
	}
	for _, s := range steps {
		clock.Advance(s.after)
		if err := w.Output([]byte(s.out)); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		e.t.Fatal(err)
	}
	x := audit.Session{ID: id, User: user, Host: "web1", Login: "root", Serial: 7, StartedAt: e.clock.Now(), RecordingPath: path}
	if err := e.store.Do(context.Background(), func(tx *audit.Tx) error { return tx.InsertSession(x) }); err != nil {
		e.t.Fatal(err)
	}
	return x
}

type step struct {
	after time.Duration
	out   string
}

func (e *env) events(typ string) []audit.Event {
	e.t.Helper()
	evs, err := e.store.Events(context.Background(), audit.EventFilter{Type: typ})
	if err != nil {
		e.t.Fatal(err)
	}
	return evs
}

func readBody(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func keyLine(t testing.TB) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(testkit.Signer(t).PublicKey())))
}

// recording returns an asciicast written by sessionlog's writer with one
// output event per second.
func recording(t testing.TB, outs []string) string {
	t.Helper()
	var buf strings.Builder
	clock := testkit.NewClock(time.Unix(1_700_000_000, 0))
	w, err := sessionlog.NewWriter(&buf, sessionlog.Header{Version: 2, Width: 80, Height: 24}, sessionlog.WriterOptions{Clock: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range outs {
		clock.Advance(time.Second)
		if err := w.Output([]byte(o)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.String()
}

// testWriter sends the console's log to the test's log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// requirePlayer fails a browser test at once, with the fix, when this
// build has no player files (a checkout not built with make).
func (e *env) requirePlayer(t testing.TB) {
	t.Helper()
	if resp, _ := e.anonymous().getResp("/console/vendor/asciinema-player.min.js"); resp.StatusCode != http.StatusOK {
		t.Fatalf("the player's files are not embedded (status %d): run make vendor first", resp.StatusCode)
	}
}
