package sso

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"

	"github.com/jitssh/jitssh/audit"
)

// ConsoleCallbackPath is the path of the web console's redirect URI.
const ConsoleCallbackPath = "/console/sso/callback"

// ConsoleRedirectURI returns the console's redirect URI for the console
// origin consoleURL (https://NAME:PORT, no path), or an error naming what
// is wrong with it. The origin is configuration (jitd serve
// --console-url), never a request's Host header: a provider sends the
// code to whatever redirect URI the flow names.
func ConsoleRedirectURI(consoleURL string) (string, error) {
	u, err := url.Parse(consoleURL)
	bad := func(why string) error {
		return fmt.Errorf("console url %q %s; want https://NAME:PORT", bounded(consoleURL), why)
	}
	switch {
	case err != nil:
		return "", bad("is not a URL")
	case u.Scheme != "https":
		return "", bad("is not https")
	case u.User != nil || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "" || u.ForceQuery:
		return "", bad("has a user, query or fragment")
	case u.Path != "" && u.Path != "/":
		return "", bad("has a path")
	case u.Hostname() == "":
		return "", bad("has no host name")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", bad("has no valid port")
		}
	}
	host := u.Host
	if u.Port() == "443" {
		host = u.Hostname()
		if net.ParseIP(host) != nil && net.ParseIP(host).To4() == nil {
			host = "[" + host + "]"
		}
	}
	return "https://" + host + ConsoleCallbackPath, nil
}

// CheckConsoleRedirect accepts uri only when it is exactly want, the
// console redirect URI the daemon configured; a look-alike (another
// host, port, path, a query, another case) is refused with
// CodeBadRedirect, as is any uri when want is empty.
func CheckConsoleRedirect(uri, want string) error {
	if want == "" || uri != want {
		return refuse(CodeBadRedirect, "", "redirect uri %q is neither a loopback redirect nor this daemon's console callback", bounded(uri))
	}
	return nil
}

// checkRedirect accepts a loopback redirect (CheckRedirect) or exactly
// the configured console redirect.
func (rp *RP) checkRedirect(uri string) error {
	if rp.opts.ConsoleRedirect != "" && uri == rp.opts.ConsoleRedirect {
		return nil
	}
	if err := CheckRedirect(uri); err != nil {
		if rp.opts.ConsoleRedirect != "" {
			return CheckConsoleRedirect(uri, rp.opts.ConsoleRedirect)
		}
		return err
	}
	return nil
}

// Abandon spends the authorization-code flow flowID because the provider
// answered the redirect with an error instead of a code (RFC 6749
// §4.1.2.1), and returns that refusal: access_denied as
// CodeAccessDenied, anything else as CodeProviderFailed. An unknown flow
// is CodeFlowUnknown. errCode and desc come from the redirect's query and
// are bounded.
func (rp *RP) Abandon(ctx context.Context, flowID, errCode, desc string) error {
	_, _, p, err := rp.take(ctx, flowID, audit.SSOFlowCode)
	if err != nil {
		return err
	}
	name := p.cfg.Name
	if errCode == "access_denied" {
		return &Error{Code: CodeAccessDenied, Reason: errCode, Message: fmt.Sprintf("provider %q refused the login: access denied %s", name, bounded(desc))}
	}
	return &Error{Code: CodeProviderFailed, Reason: bounded(errCode), Message: fmt.Sprintf("provider %q refused the login: %s %s", name, bounded(errCode), bounded(desc))}
}

// AuthOrigins returns the origins (scheme://host[:port]) of the
// providers' authorization endpoints whose discovery succeeds: the web
// console's login page must allow its form to lead there (CSP
// form-action applies to the redirect after the POST).
func (rp *RP) AuthOrigins(ctx context.Context) []string {
	var out []string
	for _, p := range rp.providers {
		d, err := p.get(ctx)
		if err != nil {
			continue
		}
		if u, err := url.Parse(d.oauth.Endpoint.AuthURL); err == nil && u.Scheme != "" && u.Host != "" {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}
