package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

// auditPage is how many events jit audit list asks for at a time.
const auditPage = 10000

func (e *env) auditCmd() *cli.Command {
	return &cli.Command{
		Name:  "audit",
		Usage: "list and verify the audit trail (auditor or admin role)",
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "list audit events in order; --format json gives NDJSON for SIEMs",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "user"}, &cli.StringFlag{Name: "host"},
					&cli.StringFlag{Name: "event", Usage: "event type, or a prefix ending in a dot (request.)"},
					&cli.StringFlag{Name: "since", Usage: "RFC 3339 time or a duration back from now (2h)"},
					&cli.StringFlag{Name: "until"},
					&cli.BoolFlag{Name: "follow", Aliases: []string{"f"}, Usage: "keep streaming new events"},
					formatFlag(),
				},
				Action: e.runAuditList,
			},
			{
				Name:   "verify",
				Usage:  "check the hash chain, the signed checkpoints and every finished recording",
				Flags:  []cli.Flag{formatFlag()},
				Action: e.runAuditVerify,
			},
		},
	}
}

// runAuditList prints every matching event; with --follow it goes on
// until interrupted, which is a normal end (exit 0).
func (e *env) runAuditList(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		q := api.EventQuery{User: c.String("user"), Host: c.String("host"), Event: c.String("event"), Since: c.String("since"), Until: c.String("until"), Limit: auditPage}
		enc := json.NewEncoder(e.stdout)
		return cl.Events(c.Context, q, c.Bool("follow"), func(ev api.Event) error {
			if asJSON {
				return enc.Encode(ev)
			}
			_, err := fmt.Fprintln(e.stdout, textLine(formatEvent(ev)))
			return err
		})
	})
}

// runAuditVerify fails with exit 1 when the trail is broken, after the
// JSON report when one was asked for.
func (e *env) runAuditVerify(c *cli.Context) error {
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		v, err := cl.API.Verify(c.Context)
		if err != nil {
			return err
		}
		if asJSON {
			if err := json.NewEncoder(e.stdout).Encode(v); err != nil {
				return err
			}
		} else {
			for _, id := range v.RecordingsLost {
				linef(e.stdout, "recording lost: session %s ended while jitd was stopped and its recording was gone (end reason recording_lost)", id)
			}
			if v.OK {
				linef(e.stdout, "ok: %d events, %d checkpoints, %d recordings verified, %d lost; head %s", v.Events, v.Checkpoints, v.Recordings, len(v.RecordingsLost), v.Head)
			}
		}
		if v.OK {
			return nil
		}
		where := ""
		if v.FirstBad != 0 {
			where = fmt.Sprintf(" at event %d", v.FirstBad)
		}
		if v.BadSession != "" {
			where = " in session " + v.BadSession
		}
		return cli.Exit(fmt.Sprintf("audit trail broken%s: %s", where, v.Problem), exitError)
	})
}

// formatEvent is the text line of one audit event.
func formatEvent(ev api.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6d %s %-20s %-22s", ev.Seq, ev.Time.Local().Format(time.DateTime), ev.Event, ev.Code)
	if ev.User != "" {
		fmt.Fprintf(&b, " user=%s", ev.User)
	}
	if ev.Actor != "" && ev.Actor != ev.User {
		fmt.Fprintf(&b, " actor=%s", ev.Actor)
	}
	if ev.Login != "" || ev.Host != "" {
		fmt.Fprintf(&b, " target=%s@%s", ev.Login, ev.Host)
	}
	if ev.RequestID != "" {
		fmt.Fprintf(&b, " request=%s", ev.RequestID)
	}
	if ev.SessionID != "" {
		fmt.Fprintf(&b, " sid=%s", ev.SessionID)
	}
	if ev.Serial != 0 {
		fmt.Fprintf(&b, " serial=%d", ev.Serial)
	}
	if ev.Message != "" {
		fmt.Fprintf(&b, " %q", ev.Message)
	}
	return b.String()
}
