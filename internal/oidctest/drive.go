package oidctest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
)

// maxSteps bounds the pages one login walks through (login, consent,
// device code, confirmation, and the redirects between them).
const maxSteps = 12

// answers are what a person types into the provider's forms.
type answers struct{ user, password, userCode string }

// CompleteLogin opens authURL (an authorization request for one of the
// provider's clients) as a browser would, signs in as user with password,
// consents, and returns the redirect the provider sends the browser to
// (the client's redirect URI with code and state, or with error). It does
// not follow that redirect. A wrong password or an error page without a
// redirect is an error wrapping ErrRefused.
func (p *Provider) CompleteLogin(authURL, user, password string) (*url.URL, error) {
	c := p.browser()
	defer c.CloseIdleConnections()
	resp, err := c.Get(authURL)
	if err != nil {
		return nil, fmt.Errorf("oidctest: open %s: %w", authURL, err)
	}
	redirect, pg, err := p.walk(c, resp, answers{user: user, password: password})
	if err != nil {
		return nil, err
	}
	if redirect == nil {
		return nil, fmt.Errorf("%w: no redirect to the client; page %q: %s", ErrRefused, pg.Title, strings.Join(pg.Errors, "; "))
	}
	return redirect, nil
}

// ApproveDevice enters userCode at the provider's device page, confirms
// it, signs in as user and consents: afterwards the device's poll gets its
// tokens. It fails, wrapping ErrRefused, when the provider does not end on
// its success page (an unknown code, a wrong password, a disabled account).
func (p *Provider) ApproveDevice(userCode, user, password string) error {
	return p.ApproveDeviceAt(p.DeviceURI, userCode, user, password)
}

// ApproveDeviceAt is ApproveDevice at a verification URI a relying party
// handed out (verification_uri, or verification_uri_complete with
// userCode empty).
func (p *Provider) ApproveDeviceAt(verificationURI, userCode, user, password string) error {
	c := p.browser()
	defer c.CloseIdleConnections()
	resp, err := c.Get(verificationURI)
	if err != nil {
		return fmt.Errorf("oidctest: open %s: %w", verificationURI, err)
	}
	redirect, pg, err := p.walk(c, resp, answers{user: user, password: password, userCode: userCode})
	if err != nil {
		return err
	}
	if redirect != nil {
		return fmt.Errorf("oidctest: device approval left the provider for %s", redirect)
	}
	if pg.Title != "Device signed in" {
		return fmt.Errorf("%w: device approval ended on page %q: %s", ErrRefused, pg.Title, strings.Join(pg.Errors, "; "))
	}
	return nil
}

// browser is a client with its own cookies (the provider's session) that
// follows redirects within the provider and stops at the first one that
// leaves it, which is the answer to the client.
func (p *Provider) browser() *http.Client {
	c := p.HTTPClient()
	c.Jar, _ = cookiejar.New(nil) // never fails without options
	issuer, _ := url.Parse(p.Issuer)
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Host != issuer.Host {
			return http.ErrUseLastResponse
		}
		if len(via) >= maxSteps {
			return fmt.Errorf("oidctest: more than %d redirects", maxSteps)
		}
		return nil
	}
	return c
}

// walk fills and submits the provider's forms until a redirect leaves the
// provider or a page has no form left to fill. A form shown again after it
// was submitted (a wrong password, an unknown code) is a refusal.
func (p *Provider) walk(c *http.Client, resp *http.Response, a answers) (*url.URL, page, error) {
	submitted := map[string]bool{}
	for range maxSteps {
		if loc := resp.Header.Get("Location"); loc != "" && resp.StatusCode/100 == 3 {
			resp.Body.Close()
			u, err := resp.Request.URL.Parse(loc)
			if err != nil {
				return nil, page{}, fmt.Errorf("oidctest: redirect %q: %w", loc, err)
			}
			return u, page{}, nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, page{}, fmt.Errorf("oidctest: read %s: %w", resp.Request.URL, err)
		}
		pg := parsePage(string(body))
		f, ok := nextForm(pg)
		if !ok {
			return nil, pg, nil
		}
		if submitted[f.ID] {
			return nil, pg, fmt.Errorf("%w: form %q again: %s", ErrRefused, f.ID, strings.Join(pg.Errors, "; "))
		}
		submitted[f.ID] = true
		if resp, err = submit(c, resp.Request.URL, f, a); err != nil {
			return nil, pg, err
		}
	}
	return nil, page{}, fmt.Errorf("oidctest: no end after %d pages", maxSteps)
}

// nextForm picks the form a person would fill on this page: sign-in,
// consent, device code or its confirmation (never a cancel form), or the
// provider's self-submitting form_post page, which a browser's script
// submits at once.
func nextForm(pg page) (form, bool) {
	for _, id := range []string{"login", "consent", "op.deviceInputForm", "op.deviceConfirmForm"} {
		for _, f := range pg.Forms {
			if f.ID == id {
				return f, true
			}
		}
	}
	if pg.Title == "Submitting Callback" && len(pg.Forms) == 1 {
		return pg.Forms[0], true
	}
	return form{}, false
}

func submit(c *http.Client, base *url.URL, f form, a answers) (*http.Response, error) {
	target, err := base.Parse(f.Action)
	if err != nil {
		return nil, fmt.Errorf("oidctest: form %q action %q: %w", f.ID, f.Action, err)
	}
	if target.Host != base.Host {
		return nil, fmt.Errorf("oidctest: form %q posts to another host %s", f.ID, target.Host)
	}
	fields := url.Values{}
	for k, v := range f.Fields {
		fields[k] = append([]string(nil), v...)
	}
	switch f.ID {
	case "login":
		fields.Set("login", a.user)
		fields.Set("password", a.password)
	case "op.deviceInputForm":
		if a.userCode != "" {
			fields.Set("user_code", a.userCode)
		}
	}
	if f.Method != "post" {
		target.RawQuery = fields.Encode()
		resp, err := c.Get(target.String())
		if err != nil {
			return nil, fmt.Errorf("oidctest: form %q: %w", f.ID, err)
		}
		return resp, nil
	}
	resp, err := c.PostForm(target.String(), fields)
	if err != nil {
		return nil, fmt.Errorf("oidctest: form %q: %w", f.ID, err)
	}
	return resp, nil
}
