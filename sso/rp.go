package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/jitssh/jitssh/ratelimit"
)

// FlowTTL is how long a login flow is accepted after it started.
const FlowTTL = 10 * time.Minute

// maxFlows bounds the flows held in memory (each a few hundred bytes).
const maxFlows = 10000

// maxDeviceFlows bounds the device flows polling at once: each is a
// goroutine asking its provider every few seconds for up to 15 minutes,
// and starting one needs no login, so their number must not let anyone
// make jitd flood a provider.
const maxDeviceFlows = 256

// MaxFlowsPerAddress bounds the live flows (code and device) of one client
// address (an IPv6 /64 counts as one, ratelimit.AddressKey): starting a
// flow needs no login, so without it a few addresses could fill the flow
// table or every device poller. Five leaves room for a person retrying.
const MaxFlowsPerAddress = 5

// abandonedPolls is how many device intervals without a client poll end
// a device flow's polling: the client went away, so jitd stops asking the
// provider for it.
const abandonedPolls = 3

// Options tunes an RP; the zero value is what jitd runs with.
type Options struct {
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Rand is the source of flow ids, states, nonces and verifiers; nil
	// means crypto/rand.
	Rand io.Reader
	// RefetchInterval is the least time between two fetches of a
	// provider's keys; zero means DefaultRefetchInterval.
	RefetchInterval time.Duration
	// ConsoleRedirect is the one non-loopback redirect URI Start accepts:
	// the web console's https://NAME:PORT/console/sso/callback (see
	// CheckConsoleRedirect); empty means loopback redirects only.
	ConsoleRedirect string
}

// RP is the relying party for the configured providers. Flows are kept in
// memory, bounded, single use and expiring after FlowTTL: they live ten
// minutes and belong to one person's login, so a restart of jitd costs
// that person a new `jit login`, and one replica (what jitd is today) needs
// no shared state. It is safe for concurrent use; Close stops the device
// flows' polling.
type RP struct {
	opts      Options
	providers []*provider

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	flows   map[string]*flow
	perAddr map[string]int // live flows by ratelimit.AddressKey
	polling int            // device flows whose polling has not ended
}

type flow struct {
	provider *provider
	expires  time.Time
	addr     string // ratelimit.AddressKey of the client that started it
	// code flow
	state, nonce, verifier, redirect string
	// device flow: set when its polling ends
	device   bool
	interval int
	lastPoll time.Time // the client's last PollDevice
	done     bool
	result   Identity
	err      error
}

// New returns the RP for cfg. Discovery happens on first use of each
// provider (and again after a failure), so a provider that is down does
// not keep jitd from starting: key login keeps working.
func New(cfg *Config, opts Options) (*RP, error) {
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.RefetchInterval == 0 {
		opts.RefetchInterval = DefaultRefetchInterval
	}
	rp := &RP{opts: opts, flows: map[string]*flow{}, perAddr: map[string]int{}}
	for _, pc := range cfg.Providers {
		p, err := newProvider(pc, opts.RefetchInterval, opts.Clock)
		if err != nil {
			return nil, err
		}
		rp.providers = append(rp.providers, p)
	}
	rp.ctx, rp.cancel = context.WithCancel(context.Background())
	return rp, nil
}

// Close stops the polling of device flows and waits for it.
func (rp *RP) Close() {
	rp.cancel()
	rp.wg.Wait()
}

// ProviderInfo describes a provider for the login page of jit.
type ProviderInfo struct {
	Name, Display string
	// Device is true when discovery found a device authorization endpoint.
	Device bool
}

// Providers lists the configured providers in file order. A provider
// whose discovery fails is listed without the device flow.
func (rp *RP) Providers(ctx context.Context) []ProviderInfo {
	out := make([]ProviderInfo, 0, len(rp.providers))
	for _, p := range rp.providers {
		info := ProviderInfo{Name: p.cfg.Name, Display: p.cfg.Display}
		if d, err := p.get(ctx); err == nil {
			info.Device = d.device
		}
		out = append(out, info)
	}
	return out
}

func (rp *RP) provider(name string) (*provider, error) {
	for _, p := range rp.providers {
		if p.cfg.Name == name {
			return p, nil
		}
	}
	return nil, refuse(CodeUnknownProvider, "", "no sso provider is named %q", bounded(name))
}

func (rp *RP) random() (string, error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rp.opts.Rand, b); err != nil {
		return "", fmt.Errorf("draw random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// put stores f under a new id, dropping expired flows first; a table
// full of live flows refuses.
func (rp *RP) put(f *flow) (string, error) {
	id, err := rp.random()
	if err != nil {
		return "", err
	}
	now := rp.opts.Clock()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.flows) >= maxFlows || rp.perAddr[f.addr] >= MaxFlowsPerAddress {
		for k, old := range rp.flows {
			if !now.Before(old.expires) {
				rp.dropLocked(k)
			}
		}
	}
	if rp.perAddr[f.addr] >= MaxFlowsPerAddress {
		return "", refuse(CodeBusy, "per_address", "%d sso logins from this address are in progress already; finish or wait for one (at most %s)", MaxFlowsPerAddress, FlowTTL)
	}
	if len(rp.flows) >= maxFlows {
		return "", refuse(CodeBusy, "", "too many sso logins in progress; try again shortly")
	}
	rp.flows[id] = f
	rp.perAddr[f.addr]++
	return id, nil
}

// dropLocked removes flow id; rp.mu must be held.
func (rp *RP) dropLocked(id string) {
	f, ok := rp.flows[id]
	if !ok {
		return
	}
	delete(rp.flows, id)
	if rp.perAddr[f.addr]--; rp.perAddr[f.addr] <= 0 {
		delete(rp.perAddr, f.addr)
	}
}

// take removes and returns the flow id of the given kind if it is live.
func (rp *RP) take(id string, device bool) (*flow, error) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	f, ok := rp.flows[id]
	if !ok || f.device != device {
		return nil, refuse(CodeFlowUnknown, "", "sso login flow is unknown, used or expired; start again")
	}
	rp.dropLocked(id)
	if !rp.opts.Clock().Before(f.expires) {
		if f.device {
			return nil, refuse(CodeExpired, "", "the device code expired at %s before the login was finished; start again", f.expires.UTC().Format(time.RFC3339))
		}
		return nil, refuse(CodeFlowUnknown, "", "sso login flow expired at %s; start again", f.expires.UTC().Format(time.RFC3339))
	}
	return f, nil
}

// CheckRedirect accepts only a loopback redirect URI as RFC 8252 §7.3
// describes: http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH.
func CheckRedirect(uri string) error {
	u, err := url.Parse(uri)
	bad := func(why string) error {
		return refuse(CodeBadRedirect, "", "redirect uri %q %s; want http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH", bounded(uri), why)
	}
	if err != nil {
		return bad("is not a URL")
	}
	if u.Scheme != "http" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" {
		return bad("must be plain http without user, query or fragment")
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil || (host != "127.0.0.1" && host != "::1") {
		return bad("is not on a loopback address")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return bad("has no valid port")
	}
	if len(u.Path) < 1 || u.Path[0] != '/' {
		return bad("has no path")
	}
	return nil
}

// Start begins an authorization-code login at the provider named name for
// the client at clientAddr: it returns the flow id (a secret for the
// caller only), the URL to open and when the flow expires. The state,
// nonce and PKCE verifier stay here. An address with MaxFlowsPerAddress
// live flows is refused CodeBusy.
func (rp *RP) Start(ctx context.Context, name, redirectURI, clientAddr string) (flowID, authURL string, expires time.Time, err error) {
	p, err := rp.provider(name)
	if err != nil {
		return "", "", time.Time{}, err
	}
	if err := rp.checkRedirect(redirectURI); err != nil {
		return "", "", time.Time{}, err
	}
	d, err := p.get(ctx)
	if err != nil {
		return "", "", time.Time{}, err
	}
	f := &flow{provider: p, redirect: redirectURI, verifier: oauth2.GenerateVerifier(), expires: rp.opts.Clock().Add(FlowTTL), addr: ratelimit.AddressKey(clientAddr)}
	if f.state, err = rp.random(); err != nil {
		return "", "", time.Time{}, err
	}
	if f.nonce, err = rp.random(); err != nil {
		return "", "", time.Time{}, err
	}
	id, err := rp.put(f)
	if err != nil {
		return "", "", time.Time{}, err
	}
	oc := d.oauth
	oc.RedirectURL = redirectURI
	u := oc.AuthCodeURL(f.state, oauth2.S256ChallengeOption(f.verifier), oauth2.SetAuthURLParam("nonce", f.nonce))
	return id, u, f.expires, nil
}

// Finish ends an authorization-code login: the flow is spent whatever the
// outcome; the state must be the flow's; the code is exchanged with the
// PKCE verifier and the ID token checked.
func (rp *RP) Finish(ctx context.Context, flowID, code, state string) (Identity, error) {
	f, err := rp.take(flowID, false)
	if err != nil {
		return Identity{}, err
	}
	id, err := rp.finish(ctx, f, code, state)
	return id, withProvider(err, f.provider.cfg.Name)
}

func (rp *RP) finish(ctx context.Context, f *flow, code, state string) (Identity, error) {
	if subtle.ConstantTimeCompare([]byte(state), []byte(f.state)) != 1 {
		return Identity{}, refuse(CodeStateMismatch, "", "state is not the one this login flow made")
	}
	d, err := f.provider.get(ctx)
	if err != nil {
		return Identity{}, err
	}
	oc := d.oauth
	oc.RedirectURL = f.redirect
	tok, err := oc.Exchange(f.provider.httpContext(ctx, nil), code, oauth2.VerifierOption(f.verifier))
	if err != nil {
		return Identity{}, providerRefusal(f.provider.cfg.Name, "code exchange", err)
	}
	return rp.fromToken(ctx, f.provider, d, tok, f.nonce)
}

// fromToken checks the ID token of a token response.
func (rp *RP) fromToken(ctx context.Context, p *provider, d *discovered, tok *oauth2.Token, nonce string) (Identity, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return Identity{}, invalid(ReasonNoIDToken, "provider %q answered without an id_token (is openid among the scopes?)", p.cfg.Name)
	}
	id, err := p.verify(ctx, d, raw, nonce)
	if err != nil {
		return Identity{}, err
	}
	id.RefreshToken = tok.RefreshToken
	return id, nil
}

// providerRefusal turns an oauth2 error into an *Error: access_denied is
// CodeAccessDenied, expired_token CodeExpired, other protocol errors and
// failures to reach the provider CodeProviderFailed.
func providerRefusal(name, what string, err error) *Error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		desc := bounded(re.ErrorDescription)
		switch re.ErrorCode {
		case "access_denied":
			return &Error{Code: CodeAccessDenied, Reason: re.ErrorCode, Message: fmt.Sprintf("provider %q refused the %s: access denied %s", name, what, desc)}
		case "expired_token":
			return &Error{Code: CodeExpired, Reason: re.ErrorCode, Message: fmt.Sprintf("provider %q: the device code expired before the login was finished", name)}
		case "invalid_grant":
			return &Error{Code: CodeAccessDenied, Reason: re.ErrorCode, Message: fmt.Sprintf("provider %q refused the %s: invalid grant %s", name, what, desc)}
		}
		return &Error{Code: CodeProviderFailed, Reason: bounded(re.ErrorCode), Message: fmt.Sprintf("provider %q refused the %s: %s %s", name, what, bounded(re.ErrorCode), desc)}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Code: CodeExpired, Reason: "deadline", Message: fmt.Sprintf("provider %q: the %s ran out of time", name, what), Err: err}
	}
	return &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("provider %q: %s failed", name, what), Err: err}
}
