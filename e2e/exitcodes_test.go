package e2e

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/tlspin"
)

// exitPolicy: alice's root@db1 needs one approval by bob; db3's requests
// wait only 2 s.
const exitPolicy = `
users:
  alice: {groups: [dev], keys: [{{index .Key "alice"}}]}
  bob: {groups: [approvers], keys: [{{index .Key "bob"}}]}
hosts:
  db1: {address: "127.0.0.1:22", labels: {env: prod}}
  db3: {address: "127.0.0.1:22", labels: {env: prod}}
roles:
  - name: prod-root
    groups: [dev]
    hosts: {names: [db1]}
    logins: [root]
    approval: {approvers: [approvers], count: 1}
  - name: short-wait
    groups: [dev]
    hosts: {names: [db3]}
    logins: [root]
    approval: {approvers: [approvers], count: 1}
    request_ttl: 2s
`

// raceProxy is a TLS reverse proxy to the daemon that, once armed, redeems
// a request itself just before it forwards the client's redemption: the
// client has read the request as approved and loses the race to redeem it.
type raceProxy struct {
	srv   *httptest.Server
	armed atomic.Bool
	won   atomic.Int32
}

func startRaceProxy(t *testing.T, daemonAddr string) *raceProxy {
	t.Helper()
	target := &url.URL{Scheme: "https", Host: daemonAddr}
	// The proxy is the test's own, on loopback: it does not check the
	// daemon's certificate, jit checks the proxy's.
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	p := &raceProxy{}
	rp := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) { r.SetURL(target) }, Transport: tr}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/certificate") && p.armed.CompareAndSwap(true, false) {
			first, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, target.String()+r.URL.Path, bytes.NewReader(nil))
			first.Header.Set("Authorization", r.Header.Get("Authorization"))
			if resp, err := tr.RoundTrip(first); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusCreated {
					p.won.Add(1)
				}
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// throughProxy returns a copy of e whose jit talks to p: its config and
// state are copied, the pinned fingerprint is the proxy's.
func throughProxy(t *testing.T, e *engineer, p *raceProxy) *engineer {
	t.Helper()
	c := *e
	c.Home = t.TempDir()
	if err := os.CopyFS(c.Home, os.DirFS(e.Home)); err != nil {
		t.Fatal(err)
	}
	dir := creds.Dir{Config: c.Home, State: filepath.Join(c.Home, "state")}
	cfg, err := dir.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	cfg.CA, cfg.Fingerprint = p.srv.URL, tlspin.Fingerprint(p.srv.Certificate().Raw)
	if err := dir.SaveConfig(cfg); err != nil {
		t.Fatal(err)
	}
	return &c
}

// TestExitCodes checks every outcome of a request against the exit codes
// of docs/cli.md, through the binary.
func TestExitCodes(t *testing.T) {
	t.Parallel()
	alice, bob := newEngineer(t, "alice"), newEngineer(t, "bob")
	d := startDaemon(t, renderPolicy(t, exitPolicy, "root", []*engineer{alice, bob}, nil))
	d.login(t, alice)
	d.login(t, bob)
	proxy := startRaceProxy(t, d.API)

	pending := func(t *testing.T, host string) string {
		t.Helper()
		return requestIDIn(t, mustRun(t, alice, "request", "root@"+host, "--reason", "rotate the keys", "--no-wait"))
	}
	approved := func(t *testing.T) string {
		t.Helper()
		id := pending(t, "db1")
		mustRun(t, bob, "approve", id, "--reason", "ok")
		return id
	}
	tests := []struct {
		name string
		// run sets up the case and runs the jit command whose exit code is
		// checked.
		run      func(t *testing.T) result
		wantCode int
		wantErr  string // in stderr
	}{
		{name: "usage", wantCode: 2, run: func(t *testing.T) result { return start(t, alice, "wait").wait(t, commandTimeout) }},
		{name: "policy denies", wantCode: 3, wantErr: "postgres", run: func(t *testing.T) result {
			return start(t, alice, "request", "postgres@db1", "--reason", "rotate the keys").wait(t, commandTimeout)
		}},
		{name: "approver denies", wantCode: 3, wantErr: "denied", run: func(t *testing.T) result {
			id := pending(t, "db1")
			mustRun(t, bob, "deny", id, "--reason", "not today")
			return start(t, alice, "wait", id).wait(t, commandTimeout)
		}},
		{name: "timed out", wantCode: 4, wantErr: "timed out", run: func(t *testing.T) result {
			return start(t, alice, "wait", pending(t, "db1"), "--timeout", "1s").wait(t, commandTimeout)
		}},
		{name: "expired", wantCode: 5, wantErr: "expired", run: func(t *testing.T) result {
			id := pending(t, "db3")
			time.Sleep(3 * time.Second)
			return start(t, alice, "wait", id).wait(t, commandTimeout)
		}},
		{name: "cancelled", wantCode: 5, wantErr: "cancelled", run: func(t *testing.T) result {
			id := pending(t, "db1")
			mustRun(t, alice, "cancel", id)
			return start(t, alice, "wait", id).wait(t, commandTimeout)
		}},
		{name: "already redeemed", wantCode: 5, wantErr: "already redeemed", run: func(t *testing.T) result {
			id := approved(t)
			mustRun(t, alice, "wait", id, "--add-to-agent", "no")
			return start(t, alice, "wait", id).wait(t, commandTimeout)
		}},
		{name: "redemption race lost", wantCode: 5, wantErr: "already redeemed", run: func(t *testing.T) result {
			id := approved(t)
			proxy.armed.Store(true)
			r := start(t, throughProxy(t, alice, proxy), "wait", id, "--add-to-agent", "no").wait(t, commandTimeout)
			if proxy.won.Load() != 1 {
				t.Fatalf("the proxy did not redeem %s first: %v", id, r)
			}
			return r
		}},
		{name: "approve a cancelled request", wantCode: 5, wantErr: "not_pending", run: func(t *testing.T) result {
			id := pending(t, "db1")
			mustRun(t, alice, "cancel", id)
			return start(t, bob, "approve", id, "--reason", "ok").wait(t, commandTimeout)
		}},
		{name: "not found", wantCode: 1, wantErr: "not_found", run: func(t *testing.T) result {
			return start(t, bob, "approve", "req_nosuchrequest", "--reason", "ok").wait(t, commandTimeout)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.run(t)
			if r.Code != tc.wantCode || !strings.Contains(r.Stderr, tc.wantErr) {
				t.Fatalf("exit %d, stderr %q; want exit %d with %q", r.Code, r.Stderr, tc.wantCode, tc.wantErr)
			}
		})
	}
}
