package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/bastion"
	"github.com/jitssh/jitssh/daemon"
	"github.com/jitssh/jitssh/grant"
	"github.com/jitssh/jitssh/ratelimit"
)

// limitFlags are jitd serve's bounds on what comes from outside; the
// defaults are daemon's, bastion's and grant's (docs/bastion.md, docs/api.md).
func limitFlags() []cli.Flag {
	return []cli.Flag{
		&cli.DurationFlag{Name: "bastion-auth-timeout", Value: bastion.DefaultAuthTimeout, Usage: "close bastion connections not authenticated within this long"},
		&cli.IntFlag{Name: "bastion-max-unauth", Value: bastion.DefaultMaxUnauthenticated, Usage: "cap on bastion connections not yet authenticated"},
		&cli.IntFlag{Name: "bastion-max-unauth-per-addr", Value: bastion.DefaultMaxUnauthenticatedPerAddr, Usage: "cap on bastion connections not yet authenticated, per source address"},
		&cli.DurationFlag{Name: "api-read-timeout", Value: daemon.DefaultAPIReadTimeout, Usage: "bound on reading a whole API request"},
		&cli.DurationFlag{Name: "api-write-timeout", Value: daemon.DefaultAPIWriteTimeout, Usage: "bound on writing an API answer (streams extend it per write)"},
		&cli.DurationFlag{Name: "api-idle-timeout", Value: daemon.DefaultAPIIdleTimeout, Usage: "close idle API keep-alive connections after this long"},
		&cli.IntFlag{Name: "api-max-conns", Value: daemon.DefaultAPIMaxConns, Usage: "cap on concurrent API connections"},
		&cli.StringFlag{Name: "login-rate", Value: rateString(grant.DefaultLoginLimit()), Usage: "login challenges and attempts allowed per client address, as N/PERIOD"},
		&cli.StringFlag{Name: "request-rate", Value: rateString(grant.DefaultRequestLimit()), Usage: "requests allowed per user, as N/PERIOD"},
	}
}

// limitsFrom reads limitFlags.
func limitsFrom(c *cli.Context) (daemon.Limits, error) {
	l := daemon.Limits{
		BastionAuthTimeout: c.Duration("bastion-auth-timeout"),
		BastionMaxUnauth:   c.Int("bastion-max-unauth"), BastionMaxUnauthPerAddr: c.Int("bastion-max-unauth-per-addr"),
		APIReadTimeout: c.Duration("api-read-timeout"), APIWriteTimeout: c.Duration("api-write-timeout"),
		APIIdleTimeout: c.Duration("api-idle-timeout"), APIMaxConns: c.Int("api-max-conns"),
	}
	var err error
	if l.Login, err = parseRate(c.String("login-rate")); err != nil {
		return l, fmt.Errorf("--login-rate: %w", err)
	}
	if l.Requests, err = parseRate(c.String("request-rate")); err != nil {
		return l, fmt.Errorf("--request-rate: %w", err)
	}
	for name, v := range map[string]int64{
		"bastion-auth-timeout": int64(l.BastionAuthTimeout), "bastion-max-unauth": int64(l.BastionMaxUnauth),
		"bastion-max-unauth-per-addr": int64(l.BastionMaxUnauthPerAddr), "api-read-timeout": int64(l.APIReadTimeout),
		"api-write-timeout": int64(l.APIWriteTimeout), "api-idle-timeout": int64(l.APIIdleTimeout), "api-max-conns": int64(l.APIMaxConns),
	} {
		if v <= 0 {
			return l, fmt.Errorf("--%s %s: want a positive value", name, c.Value(name))
		}
	}
	return l, nil
}

// parseRate reads "N/PERIOD", such as "10/1m".
func parseRate(s string) (ratelimit.Limit, error) {
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return ratelimit.Limit{}, fmt.Errorf("rate %q: want N/PERIOD, such as 10/1m", s)
	}
	events, err := strconv.Atoi(n)
	if err != nil {
		return ratelimit.Limit{}, fmt.Errorf("rate %q: count: %w", s, err)
	}
	d, err := time.ParseDuration(per)
	if err != nil {
		return ratelimit.Limit{}, fmt.Errorf("rate %q: period: %w", s, err)
	}
	l := ratelimit.Limit{Events: events, Per: d}
	return l, l.Validate()
}

// rateString is the N/PERIOD form of l that parseRate reads.
func rateString(l ratelimit.Limit) string { return fmt.Sprintf("%d/%s", l.Events, l.Per) }
