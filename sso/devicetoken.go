package sso

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// maxTokenResponse bounds what is read of a token endpoint's answer.
const maxTokenResponse = 1 << 20

// deviceGrant is RFC 8628's grant type of a device access token request.
const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceToken makes ONE device access token request (RFC 8628 §3.4) at
// p's token endpoint, authenticated as the client is registered (as
// discovery set the endpoint's AuthStyle). x/oauth2's DeviceAccessToken
// cannot serve here: it sleeps an interval before its first request and
// loops until the provider answers, in the process that started it. A
// refusal is an *oauth2.RetrieveError, as x/oauth2 returns, so that
// providerRefusal reads it; authorization_pending and slow_down are such
// refusals too.
func deviceToken(ctx context.Context, p *provider, d *discovered, deviceCode string) (*oauth2.Token, error) {
	v := url.Values{"grant_type": {deviceGrant}, "device_code": {deviceCode}, "client_id": {p.cfg.ClientID}}
	if len(d.oauth.Scopes) > 0 {
		v.Set("scope", strings.Join(d.oauth.Scopes, " "))
	}
	basic := d.oauth.Endpoint.AuthStyle == oauth2.AuthStyleInHeader && p.cfg.ClientSecret != ""
	if !basic && p.cfg.ClientSecret != "" {
		v.Set("client_secret", p.cfg.ClientSecret)
	}
	ctx, cancel := context.WithTimeout(ctx, providerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.tokenEP, strings.NewReader(v.Encode()))
	if err != nil {
		return nil, fmt.Errorf("device token request to %s: %w", d.tokenEP, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if basic {
		req.SetBasicAuth(url.QueryEscape(p.cfg.ClientID), url.QueryEscape(p.cfg.ClientSecret))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("device token request to %s: %w", d.tokenEP, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenResponse))
	if err != nil {
		return nil, fmt.Errorf("device token answer of %s: %w", d.tokenEP, err)
	}
	return parseTokenResponse(resp, body)
}

// tokenResponse is a token endpoint's JSON answer (RFC 6749 §5.1, §5.2).
type tokenResponse struct {
	AccessToken      string      `json:"access_token"`
	TokenType        string      `json:"token_type"`
	RefreshToken     string      `json:"refresh_token"`
	ExpiresIn        json.Number `json:"expires_in"`
	IDToken          string      `json:"id_token"`
	Error            string      `json:"error"`
	ErrorDescription string      `json:"error_description"`
	ErrorURI         string      `json:"error_uri"`
}

// parseTokenResponse reads a token endpoint's answer: a token, or the
// provider's refusal as an *oauth2.RetrieveError.
func parseTokenResponse(resp *http.Response, body []byte) (*oauth2.Token, error) {
	var tr tokenResponse
	jerr := json.Unmarshal(body, &tr)
	if resp.StatusCode < 200 || resp.StatusCode > 299 || tr.Error != "" {
		re := &oauth2.RetrieveError{Response: resp, Body: body}
		if jerr == nil {
			re.ErrorCode, re.ErrorDescription, re.ErrorURI = tr.Error, tr.ErrorDescription, tr.ErrorURI
		}
		return nil, re
	}
	if jerr != nil {
		return nil, fmt.Errorf("token answer is not JSON: %w", jerr)
	}
	if tr.AccessToken == "" {
		return nil, errors.New("token answer has no access_token")
	}
	tok := &oauth2.Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, RefreshToken: tr.RefreshToken}
	if secs, err := tr.ExpiresIn.Int64(); err == nil && secs > 0 {
		tok.Expiry = time.Now().Add(time.Duration(secs) * time.Second)
	}
	extra := map[string]any{}
	if tr.IDToken != "" {
		extra["id_token"] = tr.IDToken
	}
	return tok.WithExtra(extra), nil
}
