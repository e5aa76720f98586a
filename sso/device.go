package sso

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"golang.org/x/oauth2"

	"github.com/jitssh/jitssh/audit"
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
// per address, maxDeviceFlows device flows in all). The flow's place is
// reserved in the store under those bounds before the provider is asked
// for a device code, so that a refused start costs the provider nothing;
// the device code is then stored sealed under the flow id. No process
// polls the provider in the background: PollDevice does, at most once per
// interval, on whichever replica the client's poll reaches; a flow whose
// client has not polled for abandonedPolls intervals is dropped.
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
	// The reservation lives as long as the request may take, and is never
	// polled: the client learns its id only with the device code.
	now := rp.opts.Clock()
	held := now.Add(2 * providerTimeout)
	addr := ratelimit.AddressKey(clientAddr)
	id, err := rp.put(ctx, audit.SSOFlow{Kind: audit.SSOFlowDevice, Provider: name, Addr: addr, Interval: 5,
		NextPoll: held, LiveUntil: held, ExpiresAt: held}, flowSecrets{})
	if err != nil {
		return DeviceStart{}, err
	}
	wctx := context.WithoutCancel(ctx)
	da, err := rp.deviceAuth(ctx, p, d)
	if err != nil {
		_ = rp.drop(wctx, id, audit.SSOFlowDevice) // else it frees itself at held
		return DeviceStart{}, err
	}
	now = rp.opts.Clock()
	expires := now.Add(maxDeviceWait)
	if !da.Expiry.IsZero() && da.Expiry.Before(expires) {
		expires = da.Expiry
	}
	interval := int(da.Interval)
	if interval <= 0 {
		interval = 5 // RFC 8628 §3.2: the default when the provider names none
	}
	f := audit.SSOFlow{Kind: audit.SSOFlowDevice, Provider: name, Addr: addr, Interval: interval,
		NextPoll: now.Add(time.Duration(interval) * time.Second), LiveUntil: liveUntil(now, interval, expires), ExpiresAt: expires}
	if err := rp.replace(wctx, id, f, flowSecrets{DeviceCode: da.DeviceCode}); err != nil {
		return DeviceStart{}, err
	}
	return DeviceStart{Flow: id, VerificationURI: da.VerificationURI, VerificationURIComplete: da.VerificationURIComplete,
		UserCode: da.UserCode, Interval: interval, ExpiresAt: expires}, nil
}

// deviceAuth asks p for a device code, authenticated as the client is
// registered.
func (rp *RP) deviceAuth(ctx context.Context, p *provider, d *discovered) (*oauth2.DeviceAuthResponse, error) {
	nonce, err := rp.random()
	if err != nil {
		return nil, err
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
		return nil, providerRefusal(p.cfg.Name, "device authorization", err)
	}
	return da, nil
}

// liveUntil is when a device flow polled at now is dropped unless polled
// again: abandonedPolls intervals later, at most at its expiry.
func liveUntil(now time.Time, interval int, expires time.Time) time.Time {
	at := now.Add(time.Duration(abandonedPolls*interval) * time.Second)
	if at.Before(expires) {
		return at
	}
	return expires
}

// PollDevice answers a client's poll of device flow flowID: the identity
// once the provider says the person approved (spending the flow), or
// pending with the seconds to wait, or the refusal (also spending the
// flow). The flow is read from the read pool first (an unknown id costs no
// write), its provider's discovery done, then the poll claimed in the
// store: only when the flow is due (its interval has passed since the last
// provider request, by any replica) does this call ask the provider, with
// ONE token request; a slow_down raises the stored interval by five
// seconds (RFC 8628 §3.5). Only a token or a final refusal spends the
// flow: a provider that fails in passing (unreachable, 5xx, no answer in
// time, discovery failing, a replica without the flow's provider) is
// answered pending, the next request backed off, so that an approval is
// never lost to a hiccup. The request and the writes after it run without
// the client's cancellation: a client gone after the approval must not
// leave the flow half-answered. Providers do not all echo a nonce in a
// device flow's ID token, so none is required: the device code itself,
// sealed in the store, binds the token to this flow.
func (rp *RP) PollDevice(ctx context.Context, flowID string) (id Identity, pendingInterval int, err error) {
	f, err := rp.opts.Store.SSOFlow(ctx, flowHash(flowID))
	switch {
	case errors.Is(err, audit.ErrNotFound) || err == nil && f.Kind != audit.SSOFlowDevice:
		return Identity{}, 0, refuse(CodeFlowUnknown, "", "sso login flow is unknown, used or expired; start again")
	case err != nil:
		return Identity{}, 0, storeFailed(err)
	}
	sec, p, err := rp.open(flowID, f)
	var se *Error
	var d *discovered
	var derr error
	switch {
	case err == nil:
		// Discovery comes before the claim, so that the claim's hold
		// covers the token request alone.
		d, derr = p.get(ctx)
	case errors.As(err, &se) && se.Code == CodeUnknownProvider:
		// This replica lacks the flow's provider (its --sso-config is
		// behind or ahead of the others'): the poll counts, and the
		// replica that has it asks.
		derr = err
	default:
		return Identity{}, 0, withProvider(err, f.Provider)
	}
	f, claimed, err := rp.claimPoll(ctx, flowID, derr == nil)
	if err != nil || !claimed {
		return Identity{}, f.Interval, err
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*providerTimeout)
	defer cancel()
	tok, err := deviceToken(ctx, p, d, sec.DeviceCode)
	if err != nil && !finalDeviceError(err) {
		return rp.setPoll(ctx, f, err)
	}
	// A final answer: the flow is spent by whichever poll takes it, so
	// an identity goes on to grant at most once.
	if _, _, _, terr := rp.take(ctx, flowID, audit.SSOFlowDevice); terr != nil {
		return Identity{}, 0, terr
	}
	if err != nil {
		return Identity{}, 0, providerRefusal(p.cfg.Name, "device login", err)
	}
	id, err = rp.fromToken(ctx, p, d, tok, "")
	return id, 0, withProvider(err, p.cfg.Name)
}

// finalDeviceError reports whether err, from a device access token
// request, ends the flow: the provider's refusal with a code RFC 8628
// §3.5 or RFC 6749 §5.2 names as final. authorization_pending and
// slow_down, other codes (a 5xx's temporarily_unavailable), answers
// without a code and failures to reach the provider may pass.
func finalDeviceError(err error) bool {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return false
	}
	switch re.ErrorCode {
	case "access_denied", "expired_token", "invalid_request", "invalid_client", "invalid_grant",
		"unauthorized_client", "unsupported_grant_type", "invalid_scope":
		return true
	}
	return false
}

// claimPoll records the client's poll of flow flowID and, when the flow
// is due and may claim (its provider's discovery is at hand), claims the
// provider request. A dead flow (expired, abandoned) is deleted and
// refused; one not due, or not claimed, is returned unclaimed, its
// interval what the client waits.
func (rp *RP) claimPoll(ctx context.Context, flowID string, may bool) (audit.SSOFlow, bool, error) {
	hash := flowHash(flowID)
	now := rp.opts.Clock()
	var f audit.SSOFlow
	var claimed, dead bool
	err := rp.opts.Store.Do(ctx, func(tx *audit.Tx) error {
		var err error
		if f, err = tx.SSOFlow(hash); err != nil {
			return err
		}
		if f.Kind != audit.SSOFlowDevice {
			return audit.ErrNotFound
		}
		if !now.Before(f.ExpiresAt) || !now.Before(f.LiveUntil) {
			dead = true
			_, err = tx.TakeSSOFlow(hash, audit.SSOFlowDevice)
			return err
		}
		// The claim holds the flow for as long as the token request may
		// take and an interval more, so that no other replica asks while
		// it is in flight; the answer sets the next poll (setPoll). Without
		// discovery the poll only counts for liveness: a next poll in the
		// past claims nothing when it is set to itself.
		next := now.Add(time.Duration(f.Interval)*time.Second + providerTimeout)
		if !may {
			next = f.NextPoll
		}
		claimed, err = tx.ClaimSSOPoll(hash, now, next, liveUntil(now, f.Interval, f.ExpiresAt))
		claimed = claimed && may
		return err
	})
	switch {
	case errors.Is(err, audit.ErrNotFound):
		return audit.SSOFlow{}, false, refuse(CodeFlowUnknown, "", "sso login flow is unknown, used or expired; start again")
	case err != nil:
		return audit.SSOFlow{}, false, storeFailed(err)
	case dead:
		return audit.SSOFlow{}, false, rp.checkLive(f)
	}
	return f, claimed, nil
}

// setPoll answers a claimed poll that the provider did not end (err):
// pending, with the interval raised by five seconds after a slow_down
// (RFC 8628 §3.5). The next provider request is an interval after the
// answer, or two after a failure that may pass; the flow lives for
// abandonedPolls intervals from the answer, which the client waited for.
func (rp *RP) setPoll(ctx context.Context, f audit.SSOFlow, err error) (Identity, int, error) {
	interval, wait := f.Interval, f.Interval
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re) && re.ErrorCode == "authorization_pending":
	case errors.As(err, &re) && re.ErrorCode == "slow_down":
		interval += 5
		wait = interval
	default:
		wait = 2 * interval // backed off: the provider failed in passing
	}
	now := rp.opts.Clock()
	next := now.Add(time.Duration(wait) * time.Second)
	err = rp.opts.Store.Do(ctx, func(tx *audit.Tx) error {
		return tx.SetSSOPoll(f.Hash, interval, next, liveUntil(now, interval, f.ExpiresAt))
	})
	if errors.Is(err, audit.ErrNotFound) {
		return Identity{}, 0, withProvider(refuse(CodeFlowUnknown, "", "sso login flow is unknown, used or expired; start again"), f.Provider)
	}
	if err != nil {
		return Identity{}, 0, storeFailed(err)
	}
	return Identity{}, interval, nil
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
