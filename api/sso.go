package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// SSO login (issue 11): jitd is the OpenID Connect relying party. It holds
// the client id and secret, makes the state, nonce and PKCE verifier,
// exchanges the code, verifies the ID token, maps the provider's groups and
// answers with the same LoginResponse as the key login. jit never sees the
// provider's tokens. docs/sso.md describes the flows.

// SSOProviders is the answer to GET /v1/login/sso: the providers jitd is
// configured with (none when no --sso-config was given).
type SSOProviders struct {
	Providers []SSOProvider `json:"providers"`
}

// SSOProvider is one configured OpenID provider.
type SSOProvider struct {
	// Name is the provider's short name ([a-z0-9-]) that requests name.
	Name string `json:"name"`
	// Display is the name shown to people.
	Display string `json:"display"`
	// Device is true when the provider offers the device authorization
	// grant (its discovery has a device_authorization_endpoint).
	Device bool `json:"device"`
}

// SSOStartRequest is the body of POST /v1/login/sso/start.
type SSOStartRequest struct {
	Provider string `json:"provider"`
	// RedirectURI is the loopback URI jit listens on (RFC 8252 §7.3):
	// http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH.
	RedirectURI string `json:"redirect_uri"`
}

// SSOStartResponse is the answer to POST /v1/login/sso/start.
type SSOStartResponse struct {
	// Flow is a secret random id only the caller knows; the code and state
	// the provider sends back are accepted only together with it.
	Flow string `json:"flow"`
	// AuthURL is the provider's authorization URL to open in a browser.
	AuthURL string `json:"auth_url"`
	// ExpiresAt is when the flow stops being accepted (10 minutes).
	ExpiresAt time.Time `json:"expires_at"`
}

// SSOFinishRequest is the body of POST /v1/login/sso/finish: the flow and
// the code and state the provider redirected to the loopback URI with.
type SSOFinishRequest struct {
	Flow  string `json:"flow"`
	Code  string `json:"code"`
	State string `json:"state"`
}

// SSODeviceRequest is the body of POST /v1/login/sso/device.
type SSODeviceRequest struct {
	Provider string `json:"provider"`
}

// SSODeviceResponse is the answer to POST /v1/login/sso/device (RFC 8628).
type SSODeviceResponse struct {
	Flow                    string `json:"flow"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	UserCode                string `json:"user_code"`
	// Interval is the number of seconds to wait between polls.
	Interval  int       `json:"interval"`
	ExpiresAt time.Time `json:"expires_at"`
}

// SSOPollRequest is the body of POST /v1/login/sso/device/poll.
type SSOPollRequest struct {
	Flow string `json:"flow"`
}

// SSOPending is the 202 answer to a device poll while the person has not
// finished at the provider. Interval (seconds) grows when the provider
// asked to slow down; polling faster gets the same answer without a
// provider call.
type SSOPending struct {
	Interval int `json:"interval"`
}

// Codes of the SSO login (packages sso and grant).
const (
	// CodeSSOUnknownProvider means no provider of that name is configured.
	CodeSSOUnknownProvider = "sso_unknown_provider"
	// CodeSSOBadRedirect means the redirect URI is not a loopback
	// http://127.0.0.1:PORT/PATH or http://[::1]:PORT/PATH.
	CodeSSOBadRedirect = "sso_bad_redirect"
	// CodeSSOFlowUnknown means the flow is unknown, already used or expired.
	CodeSSOFlowUnknown = "sso_flow_unknown"
	// CodeSSOStateMismatch means the state is not the one the flow made.
	CodeSSOStateMismatch = "sso_state_mismatch"
	// CodeSSOAccessDenied means the provider refused (access_denied, or a
	// disabled user).
	CodeSSOAccessDenied = "sso_access_denied"
	// CodeSSOExpired means the device code expired before the person
	// finished.
	CodeSSOExpired = "sso_expired"
	// CodeSSOTokenInvalid means the ID token was refused: signature,
	// issuer, audience, azp, expiry, not-before, nonce, algorithm, or a
	// subject other than the one known for the name. The audit event's
	// reason says which.
	CodeSSOTokenInvalid = "sso_token_invalid"
	// CodeSSONoUser means the user claim is missing or not a valid jitssh
	// name.
	CodeSSONoUser = "sso_no_user"
	// CodeSSONoRoles means the provider's groups map to no jitssh group.
	CodeSSONoRoles = "sso_no_roles"
	// CodeSSORefreshFailed means the provider refused the refresh token or
	// the refreshed identity was refused.
	CodeSSORefreshFailed = "sso_refresh_failed"
	// CodeSSOProviderFailed means the provider could not be reached or
	// answered with something other than the protocol (HTTP 503).
	CodeSSOProviderFailed = "sso_provider_failed"
	// CodeNotSSOLogin means /v1/login/refresh was called with the token of
	// a key login.
	CodeNotSSOLogin = "not_sso_login"
	// CodeKeyLoginDisabled means the policy's sso.key_login turned key
	// login off for this user.
	CodeKeyLoginDisabled = "key_login_disabled"
)

// SSOProviders lists the configured OpenID providers.
func (c *Client) SSOProviders(ctx context.Context) (SSOProviders, error) {
	var out SSOProviders
	return out, c.do(ctx, http.MethodGet, "/v1/login/sso", nil, &out)
}

// SSOStart begins an authorization-code login (PKCE S256, made by jitd)
// whose provider redirects to redirectURI.
func (c *Client) SSOStart(ctx context.Context, provider, redirectURI string) (SSOStartResponse, error) {
	var out SSOStartResponse
	return out, c.do(ctx, http.MethodPost, "/v1/login/sso/start", SSOStartRequest{Provider: provider, RedirectURI: redirectURI}, &out)
}

// SSOFinish hands jitd the code and state of a flow and returns the bearer
// token. The client keeps the token.
func (c *Client) SSOFinish(ctx context.Context, flow, code, state string) (LoginResponse, error) {
	var out LoginResponse
	if err := c.do(ctx, http.MethodPost, "/v1/login/sso/finish", SSOFinishRequest{Flow: flow, Code: code, State: state}, &out); err != nil {
		return LoginResponse{}, err
	}
	c.token = out.Token
	return out, nil
}

// SSODevice begins a device-authorization login (RFC 8628) at provider.
func (c *Client) SSODevice(ctx context.Context, provider string) (SSODeviceResponse, error) {
	var out SSODeviceResponse
	return out, c.do(ctx, http.MethodPost, "/v1/login/sso/device", SSODeviceRequest{Provider: provider}, &out)
}

// SSODevicePoll asks whether the device flow is done. While the person has
// not finished it returns a non-nil *SSOPending (wait its Interval before
// the next poll); when done it returns the login, and the client keeps the
// token.
func (c *Client) SSODevicePoll(ctx context.Context, flow string) (LoginResponse, *SSOPending, error) {
	b, err := json.Marshal(SSOPollRequest{Flow: flow})
	if err != nil {
		return LoginResponse{}, nil, fmt.Errorf("encode device poll: %w", err)
	}
	resp, err := c.send(ctx, http.MethodPost, "/v1/login/sso/device/poll", bytes.NewReader(b))
	if err != nil {
		return LoginResponse{}, nil, err
	}
	defer resp.Body.Close()
	body := io.LimitReader(resp.Body, MaxBodyBytes)
	if resp.StatusCode == http.StatusAccepted {
		var p SSOPending
		if err := json.NewDecoder(body).Decode(&p); err != nil {
			return LoginResponse{}, nil, fmt.Errorf("decode device poll pending answer: %w", err)
		}
		return LoginResponse{}, &p, nil
	}
	var out LoginResponse
	if err := json.NewDecoder(body).Decode(&out); err != nil {
		return LoginResponse{}, nil, fmt.Errorf("decode device poll answer: %w", err)
	}
	c.token = out.Token
	return out, nil, nil
}

// RefreshLogin exchanges the bearer token of an SSO login for a new one
// after jitd refreshed the identity at the provider (groups read again);
// the old token is revoked. The client keeps the new token.
func (c *Client) RefreshLogin(ctx context.Context) (LoginResponse, error) {
	var out LoginResponse
	if err := c.do(ctx, http.MethodPost, "/v1/login/refresh", struct{}{}, &out); err != nil {
		return LoginResponse{}, err
	}
	c.token = out.Token
	return out, nil
}
