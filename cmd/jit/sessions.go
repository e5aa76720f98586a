package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/jitssh/jitssh/api"
	"github.com/jitssh/jitssh/jitclient"
)

func (e *env) sessionsCmd() *cli.Command {
	filterFlags := []cli.Flag{
		&cli.StringFlag{Name: "user", Usage: "only this user's sessions"},
		&cli.StringFlag{Name: "host", Usage: "only sessions on this host"},
		&cli.StringFlag{Name: "since", Usage: "RFC 3339 time or a duration back from now (2h)"},
		&cli.StringFlag{Name: "until", Usage: "RFC 3339 time or a duration back from now"},
		formatFlag(),
	}
	return &cli.Command{
		Name:  "sessions",
		Usage: "list, show, search, export and watch recorded sessions",
		Subcommands: []*cli.Command{
			{
				Name:   "list",
				Usage:  "list sessions, newest first",
				Flags:  append([]cli.Flag{&cli.BoolFlag{Name: "live", Usage: "only sessions still running"}}, filterFlags...),
				Action: e.runSessionsList,
			},
			{
				Name:      "show",
				Usage:     "show a session with its grant, justification, approvers, serials, timings and recording digest",
				ArgsUsage: "SESSION_ID",
				Flags:     []cli.Flag{formatFlag()},
				Action:    e.runSessionsShow,
			},
			{
				Name:      "search",
				Usage:     "full-text search over typed commands and output",
				ArgsUsage: "TEXT",
				Flags:     slices.DeleteFunc(slices.Clone(filterFlags), func(f cli.Flag) bool { return f.Names()[0] == "until" }),
				Action:    e.runSessionsSearch,
			},
			{
				Name:      "export",
				Usage:     "write a session as an asciicast v2 file (plays in asciinema) or a readable transcript",
				ArgsUsage: "SESSION_ID",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "file to write (default stdout)"},
					&cli.StringFlag{Name: "format", Value: "cast", Usage: "cast (asciicast v2, decompressed) or text"},
				},
				Action: e.runSessionsExport,
			},
			{
				Name:      "watch",
				Usage:     "follow a live session as it happens",
				ArgsUsage: "SESSION_ID",
				Flags:     []cli.Flag{&cli.BoolFlag{Name: "raw", Usage: "do not neutralise escape sequences"}},
				Action:    e.runSessionsWatch,
			},
		},
	}
}

func (e *env) runSessionsList(c *cli.Context) error {
	return e.withClient(func(cl *jitclient.Client) error {
		ss, err := cl.API.Sessions(c.Context, api.SessionQuery{User: c.String("user"), Host: c.String("host"), Since: c.String("since"), Until: c.String("until"), Live: c.Bool("live")})
		if err != nil {
			return err
		}
		asJSON, err := jsonOutput(c)
		if err != nil {
			return err
		}
		err = printEach(e.stdout, asJSON, ss, func(s api.Session) string {
			dur := "live"
			if s.EndedAt != nil {
				dur = s.EndedAt.Sub(s.StartedAt).Round(time.Second).String()
			}
			return fmt.Sprintf("%s  %s  %-8s %s@%s  %-6s exit %d  %s", s.ID, s.StartedAt.Local().Format(time.DateTime), s.User, s.Login, s.Host, dur, s.ExitStatus, s.Command)
		})
		if err != nil {
			return err
		}
		if len(ss) == 0 && !asJSON {
			fmt.Fprintln(e.stderr, "no sessions")
		}
		return nil
	})
}

func (e *env) runSessionsShow(c *cli.Context) error {
	if err := oneArg(c, "session id"); err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		d, err := cl.API.Session(c.Context, c.Args().First())
		if err != nil {
			return err
		}
		asJSON, err := jsonOutput(c)
		if err != nil {
			return err
		}
		if asJSON {
			return json.NewEncoder(e.stdout).Encode(d)
		}
		e.printSessionDetail(d)
		return nil
	})
}

func (e *env) runSessionsSearch(c *cli.Context) error {
	if c.NArg() < 1 {
		return cli.Exit("give the text to search for", exitUsage)
	}
	asJSON, err := jsonOutput(c)
	if err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		hits, err := cl.API.Search(c.Context, strings.Join(c.Args().Slice(), " "), c.String("user"), c.String("host"), c.String("since"))
		if err != nil {
			return err
		}
		err = printEach(e.stdout, asJSON, hits, func(h api.SearchHit) string {
			return fmt.Sprintf("%s  at %-9s %s  %s", h.SessionID, fmtOffset(h.Offset), h.Kind, h.Snippet)
		})
		if err != nil {
			return err
		}
		if len(hits) == 0 && !asJSON {
			fmt.Fprintln(e.stderr, "no matches")
		} else if !asJSON {
			fmt.Fprintln(e.stderr, "replay from a hit with: jit replay SESSION_ID --at OFFSET")
		}
		return nil
	})
}

func (e *env) runSessionsExport(c *cli.Context) error {
	if err := oneArg(c, "session id"); err != nil {
		return err
	}
	format := jitclient.ExportFormat(c.String("format"))
	if format != jitclient.ExportCast && format != jitclient.ExportText {
		return cli.Exit(fmt.Sprintf("--format %q must be cast or text", format), exitUsage)
	}
	return e.withClient(func(cl *jitclient.Client) error {
		return cl.Export(c.Context, c.Args().First(), format, c.String("output"), e.stdout)
	})
}

func (e *env) runSessionsWatch(c *cli.Context) error {
	if err := oneArg(c, "session id"); err != nil {
		return err
	}
	return e.withClient(func(cl *jitclient.Client) error {
		if err := cl.Watch(c.Context, c.Args().First(), c.Bool("raw"), e.stdout); err != nil {
			return err
		}
		fmt.Fprintln(e.stderr, "\r\n[session ended]")
		return nil
	})
}

// fmtOffset prints a search hit's offset the way jit replay --at reads it.
func fmtOffset(secs float64) string {
	return strconv.FormatFloat(secs, 'f', 1, 64) + "s"
}

// printSessionDetail writes what jit sessions show shows as text.
func (e *env) printSessionDetail(d api.SessionDetail) {
	s := d.Session
	w := e.stdout
	linef(w, "session     %s", s.ID)
	linef(w, "who         %s as %s on %s from %s", s.User, s.Login, s.Host, s.ClientAddr)
	linef(w, "started     %s", s.StartedAt.Local().Format(time.RFC3339))
	if s.EndedAt != nil {
		linef(w, "ended       %s (%s, %s)", s.EndedAt.Local().Format(time.RFC3339), s.EndedAt.Sub(s.StartedAt).Round(time.Second), s.EndReason)
	} else {
		fmt.Fprintln(w, "ended       (live)")
	}
	if s.Command != "" {
		linef(w, "command     %s", s.Command)
	}
	linef(w, "exit status %d", s.ExitStatus)
	linef(w, "bytes       %d in, %d out", s.BytesIn, s.BytesOut)
	linef(w, "serials     user cert %d, target cert %d", s.Serial, s.TargetSerial)
	linef(w, "recording   sha256 %s, %d bytes", s.RecordingSHA256, s.RecordingSize)
	if r := d.Request; r != nil {
		linef(w, "request     %s (%s, role %s)", r.ID, r.State, r.Role)
		linef(w, "justification %q", r.Reason)
		for _, a := range r.Approvals {
			verb := map[string]string{api.DecisionApprove: "approved", api.DecisionDeny: "denied"}[a.Decision]
			linef(w, "%-11s %s at %s: %q", verb, a.Approver, a.Time.Local().Format(time.RFC3339), a.Reason)
		}
	}
	printMarkers(w, d.Markers, d.MoreMarkers, s.ID)
}
