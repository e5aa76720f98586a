package jitclient

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/internal/testkit"
	"github.com/jitssh/jitssh/tlspin"
)

func TestPickProvider(t *testing.T) {
	corp := api.SSOProvider{Name: "corp", Display: "Corp SSO", Device: true}
	lab := api.SSOProvider{Name: "lab", Display: "Lab"}
	for _, c := range []struct {
		name    string
		list    []api.SSOProvider
		want    string
		wantErr string
	}{
		{"", []api.SSOProvider{corp}, "corp", ""},
		{"corp", []api.SSOProvider{corp, lab}, "corp", ""},
		{"lab", []api.SSOProvider{corp, lab}, "lab", ""},
		{"", []api.SSOProvider{corp, lab}, "", "choose one with --provider: corp, lab"},
		{"nope", []api.SSOProvider{corp, lab}, "", `no SSO provider "nope"; the daemon has: corp, lab`},
		{"", nil, "", "no SSO provider configured"},
	} {
		p, err := PickProvider(c.list, c.name)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("PickProvider(%q): %v, want an error with %q", c.name, err, c.wantErr)
			}
			continue
		}
		if err != nil || p.Name != c.want {
			t.Errorf("PickProvider(%q) = %q, %v; want %q", c.name, p.Name, err, c.want)
		}
	}
}

func TestCheckAuthURL(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://idp.example.com/auth?client_id=x": true,
		"http://idp.example.com/auth":              false,
		"--help":                                   false,
		"https:///nohost":                          false,
		"file:///etc/passwd":                       false,
		"javascript:alert(1)":                      false,
	} {
		if err := checkAuthURL(raw); (err == nil) != ok {
			t.Errorf("checkAuthURL(%q) = %v, want ok %t", raw, err, ok)
		}
	}
}

// TestCallbackHandler: one answer, and only one, is taken from the
// loopback redirect; an error from the provider is the answer too.
func TestCallbackHandler(t *testing.T) {
	for _, c := range []struct {
		name, query string
		status      int
		want        callback
	}{
		{"code", "code=c1&state=s1", http.StatusOK, callback{code: "c1", state: "s1"}},
		{"provider error", "error=access_denied&error_description=no&state=s1", http.StatusForbidden, callback{state: "s1", err: &ProviderError{Code: "access_denied", Description: "no"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := make(chan callback, 1)
			taken := make(chan callback, 1)
			go func() { // jit's side: take the answer, reply with a page
				cb := <-got
				cb.reply <- page{c.status, "reply to " + c.name + "; you can close this tab"}
				taken <- cb
			}()
			srv := httptest.NewServer(callbackHandler("s1", get(got)))
			defer srv.Close()
			// Not answers to this login: refused, not taken, and the wait
			// goes on (an error with another state included).
			for _, q := range []string{"", "code=only", "state=s1", "code=c9&state=other", "error=access_denied&state=other", "error=access_denied"} {
				if resp := mustGet(t, srv.URL+"/callback?"+q); resp.StatusCode != http.StatusBadRequest {
					t.Errorf("callback ?%s: %d, want 400", q, resp.StatusCode)
				}
			}
			if resp := mustGet(t, srv.URL+"/other?"+c.query); resp.StatusCode != http.StatusNotFound {
				t.Errorf("another path: %d, want 404", resp.StatusCode)
			}
			resp := mustGet(t, srv.URL+"/callback?"+c.query)
			if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" || resp.body != "reply to "+c.name+"; you can close this tab" {
				t.Errorf("callback: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), resp.body)
			}
			cb := <-taken
			if cb.code != c.want.code || cb.state != c.want.state || (cb.err == nil) != (c.want.err == nil) || cb.err != nil && cb.err.Error() != c.want.err.Error() {
				t.Errorf("callback gave %+v, want %+v", cb, c.want)
			}
			if resp := mustGet(t, srv.URL+"/callback?code=c2&state=s1"); resp.StatusCode != http.StatusGone {
				t.Errorf("a second callback: %d, want 410", resp.StatusCode)
			}
			select {
			case cb := <-got:
				t.Errorf("a second callback was taken: %+v", cb)
			default:
			}
		})
	}
}

func get(c chan callback) chan<- callback { return c }

type response struct {
	*http.Response
	body string
}

func mustGet(t *testing.T, url string) response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp, string(b)}
}

// TestBrowserOpener runs real commands: $BROWSER (with and without %s,
// falling through a missing one), xdg-open only on a desktop, none
// without one.
func TestBrowserOpener(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "args")
	script := filepath.Join(dir, "browser")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nprintf '%s\\n' \"$@\" > "+out+".tmp && mv "+out+".tmp "+out+"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	const u = "https://idp.example/auth?a=1&b=2"
	for _, c := range []struct {
		name    string
		env     map[string]string
		goos    string
		none    bool
		want    string
		wantErr bool
	}{
		{name: "BROWSER", env: map[string]string{"BROWSER": script}, goos: "linux", want: u + "\n"},
		{name: "BROWSER with %s and a missing first", env: map[string]string{"BROWSER": "/nonexistent/b:" + script + " --new-tab %s"}, goos: "linux", want: "--new-tab\n" + u + "\n"},
		{name: "BROWSER all missing", env: map[string]string{"BROWSER": "/nonexistent/b"}, goos: "linux", wantErr: true},
		{name: "no desktop", env: map[string]string{}, goos: "linux", none: true},
		{name: "BROWSER without a desktop", env: map[string]string{"BROWSER": script}, goos: "freebsd", want: u + "\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.Remove(out)
			open := BrowserOpener(func(k string) string { return c.env[k] }, c.goos)
			if c.none {
				if open != nil {
					t.Fatal("an opener without a desktop or $BROWSER")
				}
				return
			}
			err := open(u)
			if c.wantErr {
				if !errors.Is(err, ErrNoBrowser) {
					t.Fatalf("open: %v, want ErrNoBrowser", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []byte
			testkit.WaitFor(t, 5*time.Second, "the browser command's arguments", func() bool {
				got, err = os.ReadFile(out)
				return err == nil
			})
			if string(got) != c.want {
				t.Errorf("the browser got %q, want %q", got, c.want)
			}
		})
	}
}

// deviceDaemon answers device polls: pending (with the intervals given)
// until done, recording when each poll came.
type deviceDaemon struct {
	mu        sync.Mutex
	intervals []int // the Interval of each 202; after them, done
	expired   bool  // answer sso_expired instead of done
	polls     []time.Time
}

func (d *deviceDaemon) serve(t *testing.T) *api.Client {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/login/sso/device/poll", func(w http.ResponseWriter, _ *http.Request) {
		d.mu.Lock()
		defer d.mu.Unlock()
		n := len(d.polls)
		d.polls = append(d.polls, time.Now())
		switch {
		case n < len(d.intervals):
			writeJSON(w, http.StatusAccepted, api.SSOPending{Interval: d.intervals[n]})
		case d.expired:
			writeJSON(w, http.StatusBadRequest, api.ErrorBody{Error: api.ErrorDetail{Code: api.CodeSSOExpired, Message: "device code expired"}})
		default:
			writeJSON(w, http.StatusOK, api.LoginResponse{Token: "t", User: "alice"})
		}
	})
	srv := httptest.NewTLSServer(mux)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(srv.URL, tlspin.Fingerprint(srv.Certificate().Raw), "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// TestDevicePollPacing: jit waits the daemon's interval before each poll
// and a longer one once the daemon passes slow_down on; a device code that
// expires, at the daemon or by its expires_at, is a time-out.
func TestDevicePollPacing(t *testing.T) {
	for _, c := range []struct {
		name      string
		d         *deviceDaemon
		expiresIn time.Duration
		polls     int
		minGaps   []time.Duration
		timedOut  bool
	}{
		{name: "slow_down", d: &deviceDaemon{intervals: []int{2}}, expiresIn: time.Minute, polls: 2, minGaps: []time.Duration{time.Second, 2 * time.Second}},
		{name: "expired at the daemon", d: &deviceDaemon{intervals: []int{1}, expired: true}, expiresIn: time.Minute, polls: 2, timedOut: true},
		{name: "expires_at passes", d: &deviceDaemon{intervals: []int{1, 1, 1, 1, 1, 1}}, expiresIn: 2500 * time.Millisecond, polls: 2, timedOut: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			client := c.d.serve(t)
			var status []string
			s := SSO{Client: client, Status: func(l string) { status = append(status, l) }}
			start := time.Now()
			res, err := s.poll(context.Background(), api.SSODeviceResponse{Flow: "f", UserCode: "ABCD-EFGH", Interval: 1, ExpiresAt: start.Add(c.expiresIn)})
			if c.timedOut != errors.Is(err, ErrTimedOut) || !c.timedOut && (err != nil || res.User != "alice") {
				t.Fatalf("poll: %+v, %v (timed out wanted: %t)", res, err, c.timedOut)
			}
			if len(c.d.polls) != c.polls {
				t.Errorf("%d polls, want %d", len(c.d.polls), c.polls)
			}
			prev := start
			for i, gap := range c.minGaps {
				if got := c.d.polls[i].Sub(prev); got < gap {
					t.Errorf("poll %d came %s after the one before, want at least %s", i, got, gap)
				}
				prev = c.d.polls[i]
			}
			if len(status) == 0 || !strings.Contains(status[0], "ABCD-EFGH") || status[len(status)-1] != "" {
				t.Errorf("status lines %q: want the code, then a cleared line", status)
			}
		})
	}
}
