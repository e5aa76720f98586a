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
	"time"

	"golang.org/x/oauth2"

	"github.com/jitssh/jitssh/audit"
	"github.com/jitssh/jitssh/ratelimit"
)

// FlowTTL is how long a login flow is accepted after it started.
const FlowTTL = 10 * time.Minute

// maxFlows bounds the flows in the store, of all replicas together.
const maxFlows = 10000

// maxDeviceFlows bounds the device flows live at once: each may make jitd
// ask its provider once per interval for up to 15 minutes, and starting
// one needs no login, so their number must not let anyone make jitd flood
// a provider.
const maxDeviceFlows = 256

// MaxFlowsPerAddress bounds the live flows (code and device) of one client
// address (an IPv6 /64 counts as one, ratelimit.AddressKey): starting a
// flow needs no login, so without it a few addresses could fill the flow
// table or every device slot. Five leaves room for a person retrying.
const MaxFlowsPerAddress = 5

// abandonedPolls is how many device intervals without a client poll end
// a device flow: the client went away, so its slot is freed.
const abandonedPolls = 3

// Options tunes an RP. Store is required; the other fields' zero values
// are what jitd runs with.
type Options struct {
	// Store holds the flows in progress (audit's sso_flows), shared by
	// every replica on it.
	Store *audit.Store
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

// RP is the relying party for the configured providers. Flows in progress
// are kept in the store, keyed by the SHA-256 of the flow id with their
// secrets sealed under the id: bounded per address and in total, single
// use and expiring after FlowTTL, so that a login started at one replica
// is finished at another, or after a restart. No flow is tied to a
// process: a device flow's provider is asked only when its client polls,
// by whichever replica the poll reaches (PollDevice). It is safe for
// concurrent use.
type RP struct {
	opts      Options
	providers []*provider
}

// New returns the RP for cfg. Discovery happens on first use of each
// provider (and again after a failure), so a provider that is down does
// not keep jitd from starting: key login keeps working.
func New(cfg *Config, opts Options) (*RP, error) {
	if opts.Store == nil {
		return nil, errors.New("sso: options: Store is required (the flows in progress)")
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.RefetchInterval == 0 {
		opts.RefetchInterval = DefaultRefetchInterval
	}
	rp := &RP{opts: opts}
	for _, pc := range cfg.Providers {
		p, err := newProvider(pc, opts.RefetchInterval, opts.Clock)
		if err != nil {
			return nil, err
		}
		rp.providers = append(rp.providers, p)
	}
	return rp, nil
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
// nonce and PKCE verifier are stored sealed under the flow id. An address with MaxFlowsPerAddress
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
	sec := flowSecrets{Redirect: redirectURI, Verifier: oauth2.GenerateVerifier()}
	if sec.State, err = rp.random(); err != nil {
		return "", "", time.Time{}, err
	}
	if sec.Nonce, err = rp.random(); err != nil {
		return "", "", time.Time{}, err
	}
	expires = rp.opts.Clock().Add(FlowTTL)
	id, err := rp.put(ctx, audit.SSOFlow{Kind: audit.SSOFlowCode, Provider: p.cfg.Name, Addr: ratelimit.AddressKey(clientAddr),
		LiveUntil: expires, ExpiresAt: expires}, sec)
	if err != nil {
		return "", "", time.Time{}, err
	}
	oc := d.oauth
	oc.RedirectURL = redirectURI
	u := oc.AuthCodeURL(sec.State, oauth2.S256ChallengeOption(sec.Verifier), oauth2.SetAuthURLParam("nonce", sec.Nonce))
	return id, u, expires, nil
}

// Finish ends an authorization-code login: the flow is spent whatever the
// outcome; the state must be the flow's; the code is exchanged with the
// PKCE verifier and the ID token checked.
func (rp *RP) Finish(ctx context.Context, flowID, code, state string) (Identity, error) {
	_, sec, p, err := rp.take(ctx, flowID, audit.SSOFlowCode)
	if err != nil {
		return Identity{}, err
	}
	id, err := rp.finish(ctx, p, sec, code, state)
	return id, withProvider(err, p.cfg.Name)
}

func (rp *RP) finish(ctx context.Context, p *provider, sec flowSecrets, code, state string) (Identity, error) {
	if subtle.ConstantTimeCompare([]byte(state), []byte(sec.State)) != 1 {
		return Identity{}, refuse(CodeStateMismatch, "", "state is not the one this login flow made")
	}
	d, err := p.get(ctx)
	if err != nil {
		return Identity{}, err
	}
	oc := d.oauth
	oc.RedirectURL = sec.Redirect
	tok, err := oc.Exchange(p.httpContext(ctx, nil), code, oauth2.VerifierOption(sec.Verifier))
	if err != nil {
		return Identity{}, providerRefusal(p.cfg.Name, "code exchange", err)
	}
	return rp.fromToken(ctx, p, d, tok, sec.Nonce)
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
// CodeAccessDenied, expired_token CodeExpired, other protocol errors,
// failures to reach the provider and answers that did not come in time
// CodeProviderFailed.
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
		// The provider did not answer in time: it may next time. This is
		// no expired device code (CodeExpired), which would end jit's
		// wait.
		return &Error{Code: CodeProviderFailed, Reason: "deadline", Message: fmt.Sprintf("provider %q did not answer the %s in time; try again", name, what), Err: err}
	}
	return &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("provider %q: %s failed", name, what), Err: err}
}
