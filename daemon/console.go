package daemon

import (
	"net/http"

	"github.com/jitssh/jitssh/apiserver"

	"github.com/jitssh/jitssh/console"
	"github.com/jitssh/jitssh/grant"
)

// withConsole mounts the web console under /console/ beside the API on
// the API's listener (the same TLS certificate), wired on the same grant
// services and store.
func (d *Daemon) withConsole(api *apiserver.Server, throttle *grant.Throttle, viewKey []byte) (http.Handler, error) {
	cons, err := grant.NewConsole(grant.ConsoleConfig{Store: d.store, Policy: d.policy.Current, Clock: d.cfg.Clock})
	if err != nil {
		return nil, err
	}
	d.feed.watchConsole(cons)
	sessions, err := grant.NewSessions(grant.SessionsConfig{Store: d.store, Policy: d.policy.Current, Clock: d.cfg.Clock})
	if err != nil {
		return nil, err
	}
	logins, redirect, err := d.consoleLogins()
	if err != nil {
		return nil, err
	}
	d.feed.watchLogins(logins)
	c, err := console.New(console.Config{
		Logins: logins, SSO: d.sso, SSORedirect: redirect,
		Grants: d.grants, Console: cons, Sessions: sessions, Admin: d.admin, Store: d.store, Policy: d.policy.Current,
		Recordings:    d.recordingsFS(),
		CheckpointKey: d.checkpointKey.PublicKey(), Throttle: throttle, Clock: d.cfg.Clock, Logger: d.log.With("component", "console"),
		ViewKey: viewKey, ProxyLive: consoleProxy(api),
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	mux.Handle("/", api)
	return mux, nil
}
