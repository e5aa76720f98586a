package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

// completionTimeout bounds how long shell completion waits for the daemon:
// a slow or absent daemon leaves the completion empty, not the shell stuck.
const completionTimeout = 2 * time.Second

// maxSuggestions is the most host names an unknown name is answered with.
const maxSuggestions = 3

func (e *env) hostsCmd() *cli.Command {
	return &cli.Command{
		Name:  "hosts",
		Usage: "list the hosts you may request, with the logins each role allows and whether approval or a ticket is needed",
		Flags: append([]cli.Flag{formatFlag(),
			&cli.DurationFlag{Name: "expiring", Usage: "admins: instead, the enrolled hosts whose host certificate expires within this (as jit admin host list --expiring)"}},
			accountFlags()...),
		Action: e.runHosts,
	}
}

// runHosts prints GET /v1/hosts: a table, one row per host and login, or
// one JSON object per host with --format json.
func (e *env) runHosts(c *cli.Context) error {
	if c.IsSet("expiring") {
		return e.runHostList(c)
	}
	if c.Bool("accounts") {
		return e.runAccounts(c)
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		hosts, err := cl.API.Hosts(c.Context)
		if err != nil {
			return err
		}
		if asJSON {
			return printEach(e.stdout, true, hosts, nil)
		}
		if len(hosts) == 0 {
			fmt.Fprintln(e.stderr, "no hosts you may request; ask an admin for a role")
			return nil
		}
		return e.printHostsTable(hosts)
	})
}

// hostRow is one line of jit hosts: a login on a host as one role grants it.
type hostRow struct {
	host, login, role, needs, maxTTL, labels string
}

func (e *env) printHostsTable(hosts []api.HostEntry) error {
	rows := []hostRow{{"HOST", "LOGIN", "ROLE", "NEEDS", "MAX TTL", "LABELS"}}
	for _, h := range hosts {
		labels := make([]string, 0, len(h.Labels))
		for _, k := range slices.Sorted(maps.Keys(h.Labels)) {
			labels = append(labels, k+"="+h.Labels[k])
		}
		for _, l := range h.Logins {
			var needs []string
			if l.Approval {
				needs = append(needs, "approval")
			}
			if l.Ticket {
				needs = append(needs, "ticket")
			}
			login := l.Login
			if l.Ephemeral {
				login = "(one-time account)"
			}
			rows = append(rows, hostRow{h.Name, login, l.Role, cmp.Or(strings.Join(needs, "+"), "-"), l.MaxTTL, strings.Join(labels, ",")})
		}
	}
	var w [5]int
	for _, r := range rows {
		for i, f := range []string{r.host, r.login, r.role, r.needs, r.maxTTL} {
			w[i] = max(w[i], len(f))
		}
	}
	return printEach(e.stdout, false, rows, func(r hostRow) string {
		return strings.TrimRight(fmt.Sprintf("%-*s  %-*s  %-*s  %-*s  %-*s  %s", w[0], r.host, w[1], r.login, w[2], r.role, w[3], r.needs, w[4], r.maxTTL, r.labels), " ")
	})
}

// hostHintError is a refusal of a host name the daemon does not know,
// with the names the caller may request that are nearest to it. The
// suggestion is made here, from the caller's own GET /v1/hosts, so that it
// can only name hosts the daemon already shows this caller: the refusal
// itself (recorded by grant) names no other host.
type hostHintError struct {
	err  error
	hint string
}

func (h *hostHintError) Error() string { return h.err.Error() }
func (h *hostHintError) Unwrap() error { return h.err }

// suggestHosts wraps an unknown_host refusal of host with a hint naming
// the nearest requestable hosts; any other error is returned as it is.
func suggestHosts(ctx context.Context, cl *jitclient.Client, host string, err error) error {
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeUnknownHost {
		return err
	}
	hint := "jit hosts lists the hosts you may request"
	ctx, cancel := context.WithTimeout(ctx, statusTimeout)
	defer cancel()
	if hosts, herr := cl.API.Hosts(ctx); herr == nil {
		names := make([]string, len(hosts))
		for i, h := range hosts {
			names[i] = h.Name
		}
		if near := nearest(host, names, maxSuggestions); len(near) > 0 {
			hint = "did you mean " + strings.Join(near, ", ") + "? (" + hint + ")"
		}
	}
	return &hostHintError{err: err, hint: hint}
}

// nearest returns at most n of names within a small edit distance of name
// (two edits, or one for names of up to four characters), nearest first,
// then by name.
func nearest(name string, names []string, n int) []string {
	limit := 2
	if len([]rune(name)) <= 4 {
		limit = 1
	}
	type cand struct {
		name string
		d    int
	}
	var cs []cand
	for _, c := range names {
		if d := editDistance(name, c); d <= limit && c != name {
			cs = append(cs, cand{c, d})
		}
	}
	slices.SortFunc(cs, func(a, b cand) int { return cmp.Or(cmp.Compare(a.d, b.d), cmp.Compare(a.name, b.name)) })
	out := make([]string, 0, min(n, len(cs)))
	for _, c := range cs[:min(n, len(cs))] {
		out = append(out, c.name)
	}
	return out
}

// editDistance is the number of single-rune insertions, deletions,
// substitutions and swaps of two neighbours that turn a into b (optimal
// string alignment: "wbe1" is one swap from "web1").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// completeHosts is the shell completion of a command's HOST argument: the
// hosts the caller may request, and LOGIN@HOST for each login, from a live
// GET /v1/hosts. Flags and later arguments complete as urfave/cli does;
// without a login or a reachable daemon it prints no hosts.
func (e *env) completeHosts(withLogins bool) cli.BashCompleteFunc {
	return func(c *cli.Context) {
		// What the script completes is the word after os.Args[n-2]; a
		// flag there is completed by urfave/cli, as without this function.
		if n := len(os.Args); n > 2 && strings.HasPrefix(os.Args[n-2], "-") {
			cli.DefaultCompleteWithFlags(c.Command)(c)
			return
		}
		if c.NArg() > 0 {
			return
		}
		cl, err := e.client()
		if err != nil {
			return
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(c.Context, completionTimeout)
		defer cancel()
		hosts, err := cl.API.Hosts(ctx)
		if err != nil {
			return
		}
		for _, h := range hosts {
			linef(e.stdout, "%s", h.Name)
			if !withLogins {
				continue
			}
			var seen []string
			for _, l := range h.Logins {
				if !slices.Contains(seen, l.Login) {
					seen = append(seen, l.Login)
					linef(e.stdout, "%s@%s", l.Login, h.Name)
				}
			}
		}
	}
}
