package oidctest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

// discovery is the part of the provider's metadata the tests check.
type discovery struct {
	Issuer       string   `json:"issuer"`
	AuthURL      string   `json:"authorization_endpoint"`
	TokenURL     string   `json:"token_endpoint"`
	DeviceURL    string   `json:"device_authorization_endpoint"`
	JWKS         string   `json:"jwks_uri"`
	Grants       []string `json:"grant_types_supported"`
	Challenges   []string `json:"code_challenge_methods_supported"`
	ClaimsNames  []string `json:"claims_supported"`
	ScopesNames  []string `json:"scopes_supported"`
	SigningAlgos []string `json:"id_token_signing_alg_values_supported"`
}

func startTest(t *testing.T) (*Provider, discovery) {
	t.Helper()
	p := Start(t, Options{Accounts: map[string]Account{
		"alice": {Password: "alice-pw", Groups: []string{"eng-oncall"}},
		"bob":   {Password: "bob-pw", Groups: []string{"eng-oncall"}, Disabled: true},
	}})
	var d discovery
	if err := getJSON(p.HTTPClient(), p.Issuer+"/.well-known/openid-configuration", &d); err != nil {
		t.Fatal(err)
	}
	return p, d
}

func TestDiscovery(t *testing.T) {
	_, d := startTest(t)
	for _, c := range []struct {
		what string
		have []string
		want string
	}{
		{"grant", d.Grants, "refresh_token"},
		{"grant", d.Grants, "urn:ietf:params:oauth:grant-type:device_code"},
		{"PKCE method", d.Challenges, "S256"},
		{"claim", d.ClaimsNames, "groups"},
		{"claim", d.ClaimsNames, "preferred_username"},
		{"scope", d.ScopesNames, "offline_access"},
		{"algorithm", d.SigningAlgos, "ES256"},
	} {
		if !slices.Contains(c.have, c.want) {
			t.Errorf("discovery has no %s %q: %v", c.what, c.want, c.have)
		}
	}
	if d.DeviceURL == "" || d.JWKS == "" {
		t.Errorf("discovery lacks the device or JWKS endpoint: %+v", d)
	}
}

func oauthConfig(p *Provider, d discovery, clientID string) *oauth2.Config {
	conf := &oauth2.Config{
		ClientID: clientID,
		Endpoint: oauth2.Endpoint{AuthURL: d.AuthURL, TokenURL: d.TokenURL, DeviceAuthURL: d.DeviceURL, AuthStyle: oauth2.AuthStyleInParams},
		// Any port: the provider must match loopback redirects without it.
		RedirectURL: "http://127.0.0.1:49731/callback",
		Scopes:      []string{"openid", "profile", "groups", "offline_access"},
	}
	if clientID == ConfidentialClientID {
		conf.ClientSecret = p.ClientSecret
	}
	return conf
}

// idClaims decodes the ID token's payload (the daemon verifies it; here
// the test only reads what the provider put in).
func idClaims(t *testing.T, tok *oauth2.Token) (c struct {
	Sub      string   `json:"sub"`
	Username string   `json:"preferred_username"`
	Groups   []string `json:"groups"`
	Aud      any      `json:"aud"`
	Nonce    string   `json:"nonce"`
	Exp      int64    `json:"exp"`
	Iat      int64    `json:"iat"`
}) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("no ID token in %+v", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestCodeFlowWithPKCE logs in through the provider's pages with each
// client, exchanges the code, and refreshes: the new ID token carries the
// groups as the provider has them now, and a disabled account cannot
// refresh.
func TestCodeFlowWithPKCE(t *testing.T) {
	p, d := startTest(t)
	for _, clientID := range []string{PublicClientID, ConfidentialClientID} {
		t.Run(clientID, func(t *testing.T) {
			if err := p.SetGroups("alice", []string{"eng-oncall"}); err != nil {
				t.Fatal(err)
			}
			ctx := context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient())
			conf := oauthConfig(p, d, clientID)
			verifier := oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL("state-1", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-1"))
			redirect, err := p.CompleteLogin(authURL, "alice", "alice-pw")
			if err != nil {
				t.Fatal(err)
			}
			q := redirect.Query()
			if redirect.Host != "127.0.0.1:49731" || redirect.Path != "/callback" || q.Get("state") != "state-1" || q.Get("code") == "" {
				t.Fatalf("redirect %s, want the callback with code and state", redirect)
			}
			if _, err := conf.Exchange(ctx, q.Get("code"), oauth2.VerifierOption("wrong-"+verifier)); err == nil {
				t.Fatal("the code was exchanged with a wrong PKCE verifier")
			}
			// The failed attempt used the code up (RFC 6749 §4.1.2): log in again.
			redirect, err = p.CompleteLogin(authURL, "alice", "alice-pw")
			if err != nil {
				t.Fatal(err)
			}
			tok, err := conf.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatal(err)
			}
			c := idClaims(t, tok)
			if c.Username != "alice" || c.Nonce != "nonce-1" || !slices.Equal(c.Groups, []string{"eng-oncall"}) || tok.RefreshToken == "" {
				t.Fatalf("ID token claims %+v (refresh token %t)", c, tok.RefreshToken != "")
			}
			if err := p.SetGroups("alice", []string{"sec-audit"}); err != nil {
				t.Fatal(err)
			}
			tok.Expiry = time.Now().Add(-time.Minute) // make the source refresh
			fresh, err := conf.TokenSource(ctx, tok).Token()
			if err != nil {
				t.Fatal(err)
			}
			if g := idClaims(t, fresh).Groups; !slices.Equal(g, []string{"sec-audit"}) {
				t.Fatalf("groups after refresh %v, want [sec-audit]", g)
			}
		})
	}
}

func TestDisabledAccount(t *testing.T) {
	p, d := startTest(t)
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient())
	conf := oauthConfig(p, d, PublicClientID)
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))

	redirect, err := p.CompleteLogin(authURL, "bob", "bob-pw")
	if err != nil {
		t.Fatal(err)
	}
	if e := redirect.Query().Get("error"); e != "access_denied" {
		t.Fatalf("a disabled account's login redirects to %s, want error=access_denied", redirect)
	}

	redirect, err = p.CompleteLogin(authURL, "alice", "alice-pw")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := conf.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Disable("alice"); err != nil {
		t.Fatal(err)
	}
	tok.Expiry = time.Now().Add(-time.Minute)
	var rerr *oauth2.RetrieveError
	if _, err := conf.TokenSource(ctx, tok).Token(); !errors.As(err, &rerr) || rerr.ErrorCode != "invalid_grant" {
		t.Fatalf("refresh of a disabled account: %v, want invalid_grant", err)
	}
}

func TestWrongPassword(t *testing.T) {
	p, d := startTest(t)
	conf := oauthConfig(p, d, PublicClientID)
	authURL := conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier()))
	for _, c := range []struct{ user, password string }{{"alice", "nope"}, {"mallory", "alice-pw"}, {"alice", ""}} {
		if u, err := p.CompleteLogin(authURL, c.user, c.password); !errors.Is(err, ErrRefused) {
			t.Errorf("login %s/%q: redirect %v, err %v; want ErrRefused", c.user, c.password, u, err)
		}
	}
}

// TestDeviceFlow approves a device code through the provider's pages
// while x/oauth2 polls for it, for each client.
func TestDeviceFlow(t *testing.T) {
	p, d := startTest(t)
	for _, clientID := range []string{PublicClientID, ConfidentialClientID} {
		t.Run(clientID, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient()), time.Minute)
			defer cancel()
			conf := oauthConfig(p, d, clientID)
			var opts []oauth2.AuthCodeOption
			if conf.ClientSecret != "" {
				opts = append(opts, oauth2.SetAuthURLParam("client_secret", conf.ClientSecret))
			}
			da, err := conf.DeviceAuth(ctx, opts...)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.ApproveDevice("WRONGCOD", "alice", "alice-pw"); !errors.Is(err, ErrRefused) {
				t.Fatalf("an unknown user code was approved: %v", err)
			}
			if err := p.ApproveDeviceAt(da.VerificationURI, da.UserCode, "alice", "alice-pw"); err != nil {
				t.Fatal(err)
			}
			tok, err := conf.DeviceAccessToken(ctx, da)
			if err != nil {
				t.Fatal(err)
			}
			if c := idClaims(t, tok); c.Username != "alice" || !slices.Equal(c.Groups, []string{"eng-oncall"}) {
				t.Fatalf("ID token claims %+v", c)
			}
		})
	}
	t.Run("disabled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient()), time.Minute)
		defer cancel()
		conf := oauthConfig(p, d, PublicClientID)
		da, err := conf.DeviceAuth(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.ApproveDeviceAt(da.VerificationURIComplete, "", "bob", "bob-pw"); !errors.Is(err, ErrRefused) {
			t.Fatalf("a disabled account approved a device: %v", err)
		}
		var rerr *oauth2.RetrieveError
		if _, err := conf.DeviceAccessToken(ctx, da); !errors.As(err, &rerr) || rerr.ErrorCode != "access_denied" {
			t.Fatalf("device poll after a disabled account's approval: %v, want access_denied", err)
		}
	})
}

// TestHTTPClientTrustsOnlyTheCA: the provider's certificate is not one a
// default client accepts, so every relying party must be given CAFile.
func TestHTTPClientTrustsOnlyTheCA(t *testing.T) {
	p, _ := startTest(t)
	resp, err := http.Get(p.Issuer + "/.well-known/openid-configuration")
	if err == nil {
		resp.Body.Close()
		t.Fatal("the default client trusted the test CA")
	}
}

// TestIDTokenTTL: the lifetime the test asks for is the ID token's.
func TestIDTokenTTL(t *testing.T) {
	p := Start(t, Options{IDTokenTTL: 90 * time.Second, Accounts: map[string]Account{"alice": {Password: "pw"}}})
	var d discovery
	if err := getJSON(p.HTTPClient(), p.Issuer+"/.well-known/openid-configuration", &d); err != nil {
		t.Fatal(err)
	}
	ctx := context.WithValue(context.Background(), oauth2.HTTPClient, p.HTTPClient())
	conf := oauthConfig(p, d, PublicClientID)
	verifier := oauth2.GenerateVerifier()
	redirect, err := p.CompleteLogin(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier)), "alice", "pw")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := conf.Exchange(ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	if c := idClaims(t, tok); c.Exp-c.Iat != 90 {
		t.Errorf("ID token valid %ds, want 90", c.Exp-c.Iat)
	}
}
