package jitclient

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
)

// DefaultBrowserTimeout bounds the wait for the provider's redirect to
// the loopback callback.
const DefaultBrowserTimeout = 5 * time.Minute

// ErrNoBrowser is returned by an SSO.Open that has no browser to start;
// the login then uses the device flow.
var ErrNoBrowser = errors.New("no browser to open")

// SSO logs in through the daemon's OpenID providers (docs/sso.md). The
// daemon is the relying party: jit only opens the provider's page, carries
// the code and state of the loopback redirect back to the daemon, or shows
// the device code, and never sees the provider's tokens.
type SSO struct {
	Client *api.Client
	// Provider names the provider; empty picks the only one.
	Provider string
	// Device asks for the device flow (RFC 8628) instead of a browser.
	Device bool
	// Open starts the person's browser at a URL. Nil, or an error from it
	// (ErrNoBrowser), means the device flow.
	Open func(url string) error
	// Timeout bounds the wait for the browser's redirect
	// (DefaultBrowserTimeout when zero).
	Timeout time.Duration
	// Say shows the person a line (where to go, which code to enter);
	// required.
	Say func(format string, args ...any)
	// Status, when not nil, shows a one-line status while waiting; it is
	// called with "" once the wait is over.
	Status func(line string)
}

// ErrProviderChoice is wrapped by the errors of PickProvider: the person
// must name (another) provider.
var ErrProviderChoice = errors.New("choose an SSO provider")

// PickProvider returns the provider named name, or the only one when name
// is empty. Several providers and no name, or an unknown name, are errors
// wrapping ErrProviderChoice that list the names to choose from.
func PickProvider(list []api.SSOProvider, name string) (api.SSOProvider, error) {
	names := make([]string, len(list))
	for i, p := range list {
		names[i] = p.Name
		if p.Name == name {
			return p, nil
		}
	}
	switch {
	case len(list) == 0:
		return api.SSOProvider{}, errors.New("the daemon has no SSO provider configured; log in with your key")
	case name == "" && len(list) == 1:
		return list[0], nil
	case name == "":
		return api.SSOProvider{}, fmt.Errorf("%w: the daemon has several; choose one with --provider: %s", ErrProviderChoice, strings.Join(names, ", "))
	}
	return api.SSOProvider{}, fmt.Errorf("%w: no SSO provider %q; the daemon has: %s", ErrProviderChoice, name, strings.Join(names, ", "))
}

// Login runs the browser flow, or the device flow when asked, when there
// is no browser, or when the browser cannot be started, and returns cfg
// with the new token (as Login does for the key login) for the caller to
// save.
func (s SSO) Login(ctx context.Context, cfg creds.Config) (creds.Config, api.LoginResponse, error) {
	list, err := s.Client.SSOProviders(ctx)
	if err != nil {
		return cfg, api.LoginResponse{}, fmt.Errorf("list SSO providers: %w", err)
	}
	p, err := PickProvider(list.Providers, s.Provider)
	if err != nil {
		return cfg, api.LoginResponse{}, err
	}
	var res api.LoginResponse
	if s.Device || s.Open == nil {
		res, err = s.device(ctx, p)
	} else {
		res, err = s.browser(ctx, p)
		if errors.Is(err, ErrNoBrowser) && p.Device {
			s.Say("cannot open a browser (%v); using the device flow", err)
			res, err = s.device(ctx, p)
		}
	}
	if err != nil {
		return cfg, res, fmt.Errorf("sso login at %s: %w", p.Name, err)
	}
	cfg.User, cfg.SSO = res.User, p.Name
	return withLogin(ctx, s.Client, cfg, res), res, nil
}

// Refresh exchanges the stored token of an SSO login for a new one after
// the daemon refreshed the identity at the provider (the groups are read
// again); the old token stops working.
func Refresh(ctx context.Context, client *api.Client, cfg creds.Config) (creds.Config, api.LoginResponse, error) {
	res, err := client.RefreshLogin(ctx)
	if err != nil {
		return cfg, res, fmt.Errorf("refresh the login of %s: %w", cfg.User, err)
	}
	cfg.User = res.User
	return withLogin(ctx, client, cfg, res), res, nil
}

// withLogin stores the token in cfg, and the bastion's address and the
// host CA when the daemon tells them (an older daemon without /v1/ca still
// logs in; jit ssh then asks to log in again to learn the bastion).
func withLogin(ctx context.Context, client *api.Client, cfg creds.Config, res api.LoginResponse) creds.Config {
	cfg.Token, cfg.TokenExpires = res.Token, res.ExpiresAt
	if info, err := client.CA(ctx); err == nil {
		cfg.Bastion, cfg.HostCA = info.Bastion, info.HostCA
	}
	return cfg
}

// callback is what the provider's redirect brought to the loopback
// listener. The browser waits for the page to show on reply.
type callback struct {
	code, state string
	err         error
	reply       chan<- page
}

// page is the plain-text answer the browser shows.
type page struct {
	status int
	text   string
}

// pageWait bounds how long the browser's request waits for jit's answer
// (the daemon's finish) before it is shown a page that says to look at the
// terminal.
const pageWait = 30 * time.Second

// browser runs the authorization code flow with a loopback redirect (RFC
// 8252 §7.3): listen on 127.0.0.1, have the daemon start the flow, open
// the provider's page, take exactly one callback and hand its code and
// state to the daemon.
func (s SSO) browser(ctx context.Context, p api.SSOProvider) (api.LoginResponse, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return api.LoginResponse{}, fmt.Errorf("listen for the provider's redirect: %w", err)
	}
	defer ln.Close()
	redirect := fmt.Sprintf("http://%s/callback", ln.Addr())
	start, err := s.Client.SSOStart(ctx, p.Name, redirect)
	if err != nil {
		return api.LoginResponse{}, err
	}
	if err := checkAuthURL(start.AuthURL); err != nil {
		return api.LoginResponse{}, err
	}
	// Only the redirect of this login counts: another page (or process)
	// sending the loopback port a code or an error of its own must not
	// end it.
	au, _ := url.Parse(start.AuthURL)
	state := au.Query().Get("state")
	if state == "" {
		return api.LoginResponse{}, fmt.Errorf("the daemon's authorization URL has no state parameter")
	}
	got := make(chan callback, 1)
	srv := &http.Server{Handler: callbackHandler(state, got), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		// Let the browser's request get its page before the listener goes.
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	s.Say("opening %s in your browser; if it does not open, visit:", p.Display)
	s.Say("  %s", start.AuthURL)
	if err := s.Open(start.AuthURL); err != nil {
		if !errors.Is(err, ErrNoBrowser) {
			err = fmt.Errorf("%w: %w", ErrNoBrowser, err)
		}
		return api.LoginResponse{}, err
	}
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultBrowserTimeout
	}
	deadline := time.Now().Add(timeout)
	if !start.ExpiresAt.IsZero() && start.ExpiresAt.Before(deadline) {
		deadline = start.ExpiresAt
	}
	limit := time.Until(deadline).Round(time.Second)
	wait, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	select {
	case cb := <-got:
		if cb.err != nil {
			cb.reply <- page{http.StatusForbidden, fmt.Sprintf("The login failed: %v\nYou can close this tab.\n", cb.err)}
			return api.LoginResponse{}, cb.err
		}
		res, err := s.Client.SSOFinish(ctx, start.Flow, cb.code, cb.state)
		if err != nil {
			cb.reply <- page{http.StatusForbidden, fmt.Sprintf("The login failed: %v\nThe terminal says more. You can close this tab.\n", err)}
			return res, err
		}
		cb.reply <- page{http.StatusOK, fmt.Sprintf("Logged in to jitssh as %s. You can close this tab.\n", res.User)}
		return res, nil
	case <-wait.Done():
		if ctx.Err() != nil {
			return api.LoginResponse{}, ctx.Err()
		}
		return api.LoginResponse{}, fmt.Errorf("%w: the provider did not redirect back within %s (--timeout)", ErrTimedOut, limit)
	}
}

// ErrTimedOut means the login was not finished in time (the browser's
// redirect did not come, or the device code expired at the daemon).
var ErrTimedOut = errors.New("login timed out")

// checkAuthURL refuses an authorization URL that is not an https URL: it
// becomes an argument of the browser command, and the daemon only talks to
// HTTPS issuers.
func checkAuthURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.HasPrefix(raw, "-") {
		return fmt.Errorf("the daemon's authorization URL %q is not an https URL", raw)
	}
	return nil
}

// callbackHandler answers the provider's redirect at /callback once: the
// first request with the login's state and a code, or an error, is the
// answer, and its page is jit's reply; later ones are told the login is
// over. A request with another state (or none) is answered 400 and the
// wait goes on. The pages are plain text.
func callbackHandler(state string, got chan<- callback) http.Handler {
	mux := http.NewServeMux()
	done := make(chan struct{})
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		q := r.URL.Query()
		reply := make(chan page, 1)
		cb := callback{code: q.Get("code"), state: q.Get("state"), reply: reply}
		switch {
		case subtle.ConstantTimeCompare([]byte(cb.state), []byte(state)) != 1:
			http.Error(w, "this is not an answer to this login: the state is not its own", http.StatusBadRequest)
			return
		case q.Get("error") != "":
			cb.err = providerError(q.Get("error"), q.Get("error_description"))
		case cb.code == "":
			http.Error(w, "this is not an answer to a login: the code is missing", http.StatusBadRequest)
			return
		}
		select {
		case <-done:
			http.Error(w, "this login is already over; you can close this tab", http.StatusGone)
			return
		default:
			close(done)
		}
		got <- cb
		p := page{http.StatusAccepted, "jit has the answer; the terminal tells how the login ended. You can close this tab.\n"}
		t := time.NewTimer(pageWait)
		defer t.Stop()
		select {
		case p = <-reply:
		case <-t.C:
		case <-r.Context().Done():
			return
		}
		w.WriteHeader(p.status)
		_, _ = io.WriteString(w, p.text)
	})
	return mux
}

// ProviderError is the error the provider sent to the loopback redirect
// instead of a code (RFC 6749 §4.1.2.1).
type ProviderError struct{ Code, Description string }

func (e *ProviderError) Error() string {
	msg := "the provider refused the login: " + e.Code
	if e.Code == "access_denied" {
		msg = "the provider denied access (access_denied: the login was cancelled, or the account may not use this client or is disabled)"
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

func providerError(code, desc string) error {
	const maxLen = 200 // it is shown to the person; the provider could send anything
	if len(desc) > maxLen {
		desc = desc[:maxLen]
	}
	if len(code) > maxLen {
		code = code[:maxLen]
	}
	return &ProviderError{Code: code, Description: desc}
}

// device runs the device authorization grant (RFC 8628) through the
// daemon: show the URI and code, then poll at the daemon's interval
// (which grows when the provider says slow_down) until done or expired.
func (s SSO) device(ctx context.Context, p api.SSOProvider) (api.LoginResponse, error) {
	if !p.Device {
		return api.LoginResponse{}, fmt.Errorf("%s offers no device flow; log in in a browser (without --device, with DISPLAY or $BROWSER set)", p.Name)
	}
	d, err := s.Client.SSODevice(ctx, p.Name)
	if err != nil {
		return api.LoginResponse{}, err
	}
	s.Say("to log in at %s, visit %s and enter the code %s", p.Display, d.VerificationURI, d.UserCode)
	if d.VerificationURIComplete != "" {
		s.Say("or open %s", d.VerificationURIComplete)
	}
	return s.poll(ctx, d)
}

// minPoll is the shortest wait between polls, whatever the daemon says
// (RFC 8628 §3.5 defaults to 5 s; the daemon answers polls that come
// faster without asking the provider anyway).
const minPoll = time.Second

func (s SSO) poll(ctx context.Context, d api.SSODeviceResponse) (api.LoginResponse, error) {
	interval := pollInterval(d.Interval)
	if s.Status != nil {
		defer s.Status("")
	}
	expired := fmt.Errorf("%w: the device code expired before the login was finished", ErrTimedOut)
	for {
		left := time.Until(d.ExpiresAt)
		if left <= 0 {
			return api.LoginResponse{}, expired
		}
		if s.Status != nil {
			s.Status(fmt.Sprintf("waiting for the login at the provider (code %s, %s left)", d.UserCode, left.Round(time.Second)))
		}
		t := time.NewTimer(min(interval, left))
		select {
		case <-ctx.Done():
			t.Stop()
			return api.LoginResponse{}, ctx.Err()
		case <-t.C:
		}
		if !time.Now().Before(d.ExpiresAt) {
			return api.LoginResponse{}, expired
		}
		res, pending, err := s.Client.SSODevicePoll(ctx, d.Flow)
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Code == api.CodeSSOExpired:
			return api.LoginResponse{}, fmt.Errorf("%w: %w", ErrTimedOut, err)
		case err != nil:
			return api.LoginResponse{}, err
		case pending != nil:
			interval = max(interval, pollInterval(pending.Interval))
		default:
			return res, nil
		}
	}
}

func pollInterval(seconds int) time.Duration {
	if seconds <= 0 {
		return 5 * time.Second
	}
	return max(time.Duration(seconds)*time.Second, minPoll)
}

// ssoDenied are the codes that mean the person may not log in this way.
var ssoDenied = []string{api.CodeSSOAccessDenied, api.CodeSSONoRoles, api.CodeSSONoUser, api.CodeKeyLoginDisabled}

// IsLoginDenied reports whether err is a refusal of who the person is
// (the provider denied, no roles, key login off), not a failure.
func IsLoginDenied(err error) bool {
	var ae *api.Error
	var pe *ProviderError
	return errors.As(err, &ae) && slices.Contains(ssoDenied, ae.Code) || errors.As(err, &pe) && pe.Code == "access_denied"
}
