package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/creds"
	"github.com/jitssh/jitssh/jitclient"
)

// statusTimeout bounds how long jit status waits for the daemon before it
// shows the local view alone.
const statusTimeout = 10 * time.Second

func (e *env) statusCmd() *cli.Command {
	return &cli.Command{
		Name:   "status",
		Usage:  "list your grants with the time left, as the daemon sees them (revoked, expired, cut sessions)",
		Flags:  []cli.Flag{formatFlag()},
		Action: e.runStatus,
	}
}

// runStatus lists the grants whose certificate the local files hold valid
// and asks the daemon about each; when it cannot, it says so and shows the
// local view, marked as such.
func (e *env) runStatus(c *cli.Context) error {
	dir, err := creds.DefaultDir()
	if err != nil {
		return err
	}
	gs, err := dir.Grants()
	if err != nil {
		return err
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	now := time.Now()
	var live []creds.Grant
	for _, g := range gs {
		if g.ValidBefore().After(now) {
			live = append(live, g)
		}
	}
	states := e.grantStates(c.Context, live)
	enc := json.NewEncoder(e.stdout)
	for _, st := range states {
		if asJSON {
			if err := enc.Encode(statusJSON(st, now)); err != nil {
				return err
			}
			continue
		}
		e.printStatus(st, now)
	}
	if len(live) == 0 && !asJSON {
		fmt.Fprintln(e.stderr, "no live grants; ask with jit request HOST --login LOGIN --reason TEXT")
	}
	return nil
}

// grantStates asks the daemon about grants, or marks them all local-only
// (with a warning on stderr) when it cannot be asked.
func (e *env) grantStates(ctx context.Context, grants []creds.Grant) []jitclient.GrantState {
	var states []jitclient.GrantState
	cl, err := e.client()
	if err == nil {
		defer cl.Close()
		ctx, cancel := context.WithTimeout(ctx, statusTimeout)
		defer cancel()
		states = cl.GrantStates(ctx, grants)
	} else {
		for _, g := range grants {
			states = append(states, jitclient.GrantState{Grant: g, Offline: err})
		}
	}
	for _, st := range states {
		if st.Offline != nil {
			printError(e.stderr, "jit: warning:", fmt.Sprintf("the daemon could not be asked (%v); showing the local files only", st.Offline))
			break
		}
	}
	return states
}

// stateOf names a grant's state: the daemon's (valid, revoked, expired,
// not_yet_valid), unknown to it, or local (not asked).
func stateOf(st jitclient.GrantState) string {
	switch {
	case st.Offline != nil:
		return "local"
	case st.Unknown:
		return "unknown"
	}
	return st.Remote.State
}

func cutSessions(st jitclient.GrantState) []api.GrantSession {
	var out []api.GrantSession
	if st.Remote != nil {
		for _, s := range st.Remote.Sessions {
			if s.Cut() {
				out = append(out, s)
			}
		}
	}
	return out
}

func statusJSON(st jitclient.GrantState, now time.Time) map[string]any {
	g := st.Grant
	m := map[string]any{"principal": g.Login + "@" + g.Host, "serial": fmt.Sprint(g.Cert.Serial),
		"valid_before": g.ValidBefore().UTC(), "seconds_left": int(g.ValidBefore().Sub(now).Seconds()), "key_id": g.Cert.KeyId,
		"certificate_file": g.CertPath, "state": stateOf(st), "cut_sessions": cutSessions(st)}
	if st.Remote != nil && st.Remote.RevokedAt != nil {
		m["revoked_at"], m["revoke_reason"] = st.Remote.RevokedAt.UTC(), st.Remote.RevokeReason
	}
	return m
}

func (e *env) printStatus(st jitclient.GrantState, now time.Time) {
	g := st.Grant
	left := g.ValidBefore().Sub(now).Round(time.Second)
	var state string
	switch s := stateOf(st); s {
	case api.CertValid:
		state = "live"
	case api.CertRevoked:
		state = "REVOKED: " + st.Remote.RevokeReason
	case "local":
		state = "local files only"
	case "unknown":
		state = "UNKNOWN to the daemon"
	default:
		state = s
	}
	linef(e.stdout, "%-32s %8s left  serial %d  %s  [%s]", g.Login+"@"+g.Host, left, g.Cert.Serial, g.Cert.KeyId, state)
	for _, s := range cutSessions(st) {
		linef(e.stdout, "  session %s cut at %s: %s", s.ID, s.EndedAt.UTC().Format(time.RFC3339), s.EndReason)
	}
}
