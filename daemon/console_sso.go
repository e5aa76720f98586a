package daemon

import (
	"fmt"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/sso"
)

// consoleSSOOptions are the RP options: with --console-url, the one
// non-loopback redirect URI the RP accepts is the console's callback.
func consoleSSOOptions(cfg Config) (sso.Options, error) {
	opts := sso.Options{Clock: cfg.Clock}
	if cfg.ConsoleURL == "" {
		return opts, nil
	}
	uri, err := sso.ConsoleRedirectURI(cfg.ConsoleURL)
	if err != nil {
		return opts, fmt.Errorf("--console-url: %w", err)
	}
	opts.ConsoleRedirect = uri
	return opts, nil
}

// consoleLogins is the login domain the console's SSO buttons use: the
// same store, policy, providers and token rules as the API's, so a
// console SSO login issues and records the token exactly as jit login
// --sso does. Nil when the console offers no SSO login.
func (d *Daemon) consoleLogins() (*grant.Logins, string, error) {
	if d.sso == nil || d.cfg.ConsoleURL == "" {
		return nil, "", nil
	}
	uri, err := sso.ConsoleRedirectURI(d.cfg.ConsoleURL)
	if err != nil {
		return nil, "", err
	}
	fp := d.addrs.TLSFingerprint
	l, err := grant.NewLogins(grant.LoginConfig{
		Store: d.store, Policy: d.policy.Current, Clock: d.cfg.Clock,
		Message:      func(user, nonce string) []byte { return api.LoginMessage(user, nonce, fp) },
		SSO:          d.sso,
		RefreshUsers: d.policy.RefreshUsers,
	})
	return l, uri, err
}
