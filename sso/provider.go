package sso

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"golang.org/x/oauth2"
)

// rediscoverAfter is how long a failed discovery is remembered before the
// next use tries again: a provider down when jitd starts must not keep it
// down (key login is the break-glass path), nor be asked on every request.
const rediscoverAfter = 10 * time.Second

// rediscoverEvery is how long a good discovery is used before it is read
// again: a provider that moves an endpoint or its key set is followed
// without a restart. A failed rediscovery keeps the last good one.
const rediscoverEvery = time.Hour

// providerTimeout bounds every call to a provider.
const providerTimeout = 15 * time.Second

// provider is one configured provider and, once discovery succeeded, its
// endpoints, keys and verifier.
type provider struct {
	cfg      ProviderConfig
	client   *http.Client
	interval time.Duration
	now      func() time.Time

	mu       sync.Mutex
	ready    *discovered
	readyAt  time.Time
	failedAt time.Time
	lastErr  error
}

type discovered struct {
	oauth   oauth2.Config
	keys    *keySet
	oidc    *oidc.IDTokenVerifier
	device  bool
	tokenEP string
}

func newProvider(cfg ProviderConfig, interval time.Duration, now func() time.Time) (*provider, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("provider %q: ca_file: %w", cfg.Name, err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("provider %q: ca_file %s holds no PEM certificate", cfg.Name, cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	tr := &http.Transport{TLSClientConfig: tc, Proxy: http.ProxyFromEnvironment, MaxIdleConnsPerHost: 4, IdleConnTimeout: time.Minute}
	client := &http.Client{Transport: tr, Timeout: providerTimeout,
		// A provider's token and key endpoints answer directly; a redirect
		// there is a misconfiguration, not something to follow.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &provider{cfg: cfg, client: client, interval: interval, now: now}, nil
}

// get returns the discovered provider, discovering it first if needed.
func (p *provider) get(ctx context.Context) (*discovered, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	if p.ready != nil && now.Sub(p.readyAt) < rediscoverEvery {
		return p.ready, nil
	}
	if !p.failedAt.IsZero() && now.Sub(p.failedAt) < rediscoverAfter {
		if p.ready != nil {
			return p.ready, nil
		}
		return nil, &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("provider %q discovery failed; retrying after %s", p.cfg.Name, rediscoverAfter), Err: p.lastErr}
	}
	d, err := p.discover(ctx)
	if err != nil {
		p.failedAt, p.lastErr = now, err
		if p.ready != nil {
			return p.ready, nil // the last good discovery, until one succeeds
		}
		return nil, &Error{Code: CodeProviderFailed, Message: fmt.Sprintf("provider %q discovery at %s failed", p.cfg.Name, p.cfg.Issuer), Err: err}
	}
	p.ready, p.readyAt = d, now
	return d, nil
}

func (p *provider) discover(ctx context.Context) (*discovered, error) {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, p.client), providerTimeout)
	defer cancel()
	op, err := oidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	var extra struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := op.Claims(&extra); err != nil || extra.JWKS == "" {
		return nil, fmt.Errorf("discovery of %s has no jwks_uri", p.cfg.Issuer)
	}
	ep := op.Endpoint()
	// Every endpoint jitd sends a code, a secret or a refresh token to, or
	// takes keys from, must be TLS like the issuer.
	for _, e := range []struct{ name, url string }{{"jwks_uri", extra.JWKS}, {"token_endpoint", ep.TokenURL},
		{"authorization_endpoint", ep.AuthURL}, {"device_authorization_endpoint", ep.DeviceAuthURL}} {
		if e.url != "" && !strings.HasPrefix(e.url, "https://") {
			return nil, fmt.Errorf("discovery of %s: %s %q is not an https URL", p.cfg.Issuer, e.name, e.url)
		}
	}
	algs := make([]jose.SignatureAlgorithm, 0, len(p.cfg.Algorithms))
	for _, a := range p.cfg.Algorithms {
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	ks := &keySet{url: extra.JWKS, client: p.client, algs: algs, interval: p.interval, now: p.now}
	switch {
	case p.cfg.ClientSecret == "" || p.cfg.ClientAuth == "post":
		// A public client names itself in the body (it has no secret for
		// a header). Auto-detection would send every failing request, such
		// as each pending device poll, twice.
		ep.AuthStyle = oauth2.AuthStyleInParams
	case p.cfg.ClientAuth == "basic":
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	d := &discovered{
		oauth: oauth2.Config{ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret, Endpoint: ep, Scopes: p.cfg.Scopes},
		keys:  ks,
		// go-oidc checks again what verify already did (signature through
		// the same rate-limited key set, issuer, audience): a second,
		// independent reading of the token. Expiry and not-before are ours,
		// with this package's clock and a smaller skew than go-oidc's 5m.
		oidc:    oidc.NewVerifier(p.cfg.Issuer, ks, &oidc.Config{ClientID: p.cfg.ClientID, SupportedSigningAlgs: p.cfg.Algorithms, SkipExpiryCheck: true}),
		device:  ep.DeviceAuthURL != "" && !p.cfg.NoDevice,
		tokenEP: ep.TokenURL,
	}
	return d, nil
}

// httpContext is ctx carrying the provider's HTTP client for x/oauth2.
func (p *provider) httpContext(ctx context.Context, client *http.Client) context.Context {
	if client == nil {
		client = p.client
	}
	return context.WithValue(ctx, oauth2.HTTPClient, client)
}
