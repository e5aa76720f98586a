package sso

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"time"

	"golang.org/x/oauth2"
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
// name. jitd polls the provider itself in the background, at the
// provider's interval and slowing down when asked (x/oauth2's
// DeviceAccessToken), so however often the caller polls PollDevice, the
// provider is asked at most once per interval.
func (rp *RP) StartDevice(ctx context.Context, name string) (DeviceStart, error) {
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
	if p.cfg.ClientSecret != "" {
		// x/oauth2's DeviceAuth sends no client authentication of its
		// own; a confidential client authenticates in the body
		// (client_secret_post), as RFC 8628 §3.1 allows.
		opts = append(opts, oauth2.SetAuthURLParam("client_secret", p.cfg.ClientSecret))
	}
	da, err := d.oauth.DeviceAuth(p.httpContext(ctx, nil), opts...)
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
	f := &flow{provider: p, device: true, interval: int(da.Interval), expires: expires}
	id, err := rp.put(f)
	if err != nil {
		return DeviceStart{}, err
	}
	rp.wg.Add(1)
	started = true
	go rp.pollDevice(f, d, da)
	return DeviceStart{Flow: id, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		UserCode: da.UserCode, Interval: f.interval, ExpiresAt: expires}, nil
}

// pollDevice runs x/oauth2's polling for flow f and stores its outcome.
// Providers do not all echo a nonce in a device flow's ID token, so the
// nonce is not required there: the device code itself binds the token to
// this flow (only jitd holds it).
func (rp *RP) pollDevice(f *flow, d *discovered, da *oauth2.DeviceAuthResponse) {
	defer rp.wg.Done()
	defer rp.releasePoller()
	// x/oauth2 adds 5s to its interval at each slow_down (RFC 8628 §3.5);
	// the flow's interval, which jit is told, follows it.
	slowDown := func() {
		rp.mu.Lock()
		f.interval += 5
		rp.mu.Unlock()
	}
	client := &http.Client{Timeout: providerTimeout, CheckRedirect: f.provider.client.CheckRedirect,
		Transport: slowDownWatcher{next: f.provider.client.Transport, seen: slowDown}}
	ctx := f.provider.httpContext(rp.ctx, client)
	tok, err := d.oauth.DeviceAccessToken(ctx, da)
	var id Identity
	if err == nil {
		id, err = rp.fromToken(rp.ctx, f.provider, d, tok, "")
	} else if _, ok := err.(*Error); !ok {
		err = providerRefusal(f.provider.cfg.Name, "device login", err)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	f.done, f.result, f.err = true, id, err
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
		return Identity{}, 0, refuse(CodeExpired, "", "the device code expired before the login was finished")
	}
	return f.result, 0, f.err
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
