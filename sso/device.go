package sso

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"golang.org/x/oauth2"

	"github.com/jitssh/jitssh/ratelimit"
)

// maxDeviceWait caps a device code's life whatever the provider says.
const maxDeviceWait = 15 * time.Minute

// DeviceStart is a started device flow (RFC 8628).
type DeviceStart struct {
	Flow                    string
	VerificationURI         string
	VerificationURIComplete string
	UserCode                string
	Interval                int
	ExpiresAt               time.Time
}

// StartDevice begins a device-authorization login at the provider named
// name for the client at clientAddr (at most MaxFlowsPerAddress live flows
// per address). When the client has not polled for abandonedPolls
// intervals, the polling ends and the flow is dropped. jitd polls the provider itself in the background, at the
// provider's interval and slowing down when asked (x/oauth2's
// DeviceAccessToken), so however often the caller polls PollDevice, the
// provider is asked at most once per interval.
func (rp *RP) StartDevice(ctx context.Context, name, clientAddr string) (DeviceStart, error) {
	p, err := rp.provider(name)
	if err != nil {
		return DeviceStart{}, err
	}
	d, err := p.get(ctx)
	if err != nil {
		return DeviceStart{}, err
	}
	if !d.device {
		return DeviceStart{}, refuse(CodeUnknownProvider, "no_device", "provider %q offers no device flow (no device_authorization_endpoint)", name)
	}
	if !rp.reservePoller() {
		return DeviceStart{}, refuse(CodeBusy, "", "too many device logins in progress; try again shortly")
	}
	started := false
	defer func() {
		if !started {
			rp.releasePoller()
		}
	}()
	nonce, err := rp.random()
	if err != nil {
		return DeviceStart{}, err
	}
	opts := []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("nonce", nonce)}
	var client *http.Client
	switch {
	case p.cfg.ClientSecret == "":
	case p.cfg.ClientAuth == "basic":
		// x/oauth2's DeviceAuth sends no client authentication of its
		// own: the header of client_secret_basic is added here, as the
		// client is registered (RFC 6749 §2.3.1 form-encodes both parts).
		c := *p.client
		c.Transport = basicAuth{next: p.client.Transport, id: p.cfg.ClientID, secret: p.cfg.ClientSecret}
		client = &c
	default:
		// client_secret_post (RFC 8628 §3.1 allows it), the default
		// here: an unconfigured method has no way to learn which works.
		opts = append(opts, oauth2.SetAuthURLParam("client_secret", p.cfg.ClientSecret))
	}
	da, err := d.oauth.DeviceAuth(p.httpContext(ctx, client), opts...)
	if err != nil {
		return DeviceStart{}, providerRefusal(name, "device authorization", err)
	}
	now := rp.opts.Clock()
	expires := now.Add(maxDeviceWait)
	if !da.Expiry.IsZero() && da.Expiry.Before(expires) {
		expires = da.Expiry
	}
	da.Expiry = expires
	if da.Interval <= 0 {
		da.Interval = 5
	}
	f := &flow{provider: p, device: true, interval: int(da.Interval), expires: expires, addr: ratelimit.AddressKey(clientAddr), lastPoll: now}
	id, err := rp.put(f)
	if err != nil {
		return DeviceStart{}, err
	}
	rp.wg.Add(1)
	started = true
	go rp.pollDevice(id, f, d, da)
	return DeviceStart{Flow: id, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		UserCode: da.UserCode, Interval: f.interval, ExpiresAt: expires}, nil
}

// pollDevice runs x/oauth2's polling for flow f and stores its outcome.
// Providers do not all echo a nonce in a device flow's ID token, so the
// nonce is not required there: the device code itself binds the token to
// this flow (only jitd holds it).
func (rp *RP) pollDevice(id string, f *flow, d *discovered, da *oauth2.DeviceAuthResponse) {
	defer rp.wg.Done()
	defer rp.releasePoller()
	pctx, cancel := context.WithCancel(rp.ctx)
	defer cancel()
	var abandoned atomic.Bool
	go rp.watchClient(pctx, id, f, func() { abandoned.Store(true); cancel() })
	// x/oauth2 adds 5s to its interval at each slow_down (RFC 8628 §3.5);
	// the flow's interval, which jit is told, follows it.
	slowDown := func() {
		rp.mu.Lock()
		f.interval += 5
		rp.mu.Unlock()
	}
	client := &http.Client{Timeout: providerTimeout, CheckRedirect: f.provider.client.CheckRedirect,
		Transport: slowDownWatcher{next: f.provider.client.Transport, seen: slowDown}}
	ctx := f.provider.httpContext(pctx, client)
	tok, err := d.oauth.DeviceAccessToken(ctx, da)
	var who Identity
	switch {
	case abandoned.Load():
		err = refuse(CodeExpired, "abandoned", "the device login was dropped: its client stopped polling")
	case err == nil:
		who, err = rp.fromToken(rp.ctx, f.provider, d, tok, "")
	default:
		if _, ok := err.(*Error); !ok {
			err = providerRefusal(f.provider.cfg.Name, "device login", err)
		}
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	f.done, f.result, f.err = true, who, err
	if abandoned.Load() && rp.flows[id] == f {
		rp.dropLocked(id) // frees the address's slot at once
	}
}

// watchClient calls abandon when flow f's client has not polled for
// abandonedPolls intervals, until ctx ends.
func (rp *RP) watchClient(ctx context.Context, id string, f *flow, abandon func()) {
	for {
		rp.mu.Lock()
		wait := time.Duration(abandonedPolls*f.interval) * time.Second
		idle := rp.opts.Clock().Sub(f.lastPoll)
		rp.mu.Unlock()
		if idle > wait {
			abandon()
			return
		}
		t := time.NewTimer(wait - idle + 10*time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

func (rp *RP) reservePoller() bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.polling >= maxDeviceFlows {
		return false
	}
	rp.polling++
	return true
}

func (rp *RP) releasePoller() {
	rp.mu.Lock()
	rp.polling--
	rp.mu.Unlock()
}

// PollDevice returns the identity of a finished device flow (spending the
// flow), or pending with the interval to wait, or the refusal (also
// spending the flow).
func (rp *RP) PollDevice(ctx context.Context, flowID string) (id Identity, pendingInterval int, err error) {
	rp.mu.Lock()
	f, ok := rp.flows[flowID]
	if ok && f.device && !f.done && rp.opts.Clock().Before(f.expires) {
		f.lastPoll = rp.opts.Clock()
		interval := f.interval
		rp.mu.Unlock()
		return Identity{}, interval, nil
	}
	rp.mu.Unlock()
	f, err = rp.take(flowID, true)
	if err != nil {
		return Identity{}, 0, err
	}
	if !f.done {
		return Identity{}, 0, withProvider(refuse(CodeExpired, "", "the device code expired before the login was finished"), f.provider.cfg.Name)
	}
	return f.result, 0, withProvider(f.err, f.provider.cfg.Name)
}

// slowDownWatcher tells seen when a token endpoint answers slow_down, so
// the interval passed on to jit grows as x/oauth2's does.
type slowDownWatcher struct {
	next http.RoundTripper
	seen func()
}

func (w slowDownWatcher) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := w.next.RoundTrip(r)
	if err != nil || resp.StatusCode < 400 || resp.StatusCode >= 500 {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr == nil {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error == "slow_down" {
			w.seen()
		}
	}
	return resp, nil
}

// Refresh uses the refresh token of an earlier login of subject at the
// provider named name and returns the identity the new ID token names
// (groups read again), with the new refresh token (or the old one when the
// provider rotates none). A provider that refuses (the person was
// disabled, the session ended) is CodeRefreshFailed with its reason; a
// different subject is CodeTokenInvalid.
func (rp *RP) Refresh(ctx context.Context, name, refreshToken, subject string) (Identity, error) {
	p, err := rp.provider(name)
	if err != nil {
		return Identity{}, err
	}
	d, err := p.get(ctx)
	if err != nil {
		return Identity{}, err
	}
	if refreshToken == "" {
		return Identity{}, refuse(CodeRefreshFailed, "no_refresh_token", "provider %q gave no refresh token at login (is offline_access among the scopes?)", name)
	}
	src := d.oauth.TokenSource(p.httpContext(ctx, nil), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		e := providerRefusal(name, "refresh", err)
		if e.Code == CodeAccessDenied {
			e.Code = CodeRefreshFailed
		}
		return Identity{}, e
	}
	id, err := rp.fromToken(ctx, p, d, tok, "")
	if err != nil {
		return Identity{}, err
	}
	if id.Subject != subject {
		return Identity{}, invalid(ReasonSubject, "refreshed id token names subject %q, not the login's %q", bounded(id.Subject), bounded(subject))
	}
	if id.RefreshToken == "" {
		id.RefreshToken = refreshToken
	}
	return id, nil
}

// basicAuth adds client_secret_basic authentication to each request.
type basicAuth struct {
	next       http.RoundTripper
	id, secret string
}

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(url.QueryEscape(b.id), url.QueryEscape(b.secret))
	return b.next.RoundTrip(r)
}
